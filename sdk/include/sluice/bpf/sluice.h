/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The BPF side of the Sluice SDK: shared maps, the packet context, the stage
 * macro and its verbs, counters and the trace log.
 *
 *   #include <sluice/bpf/sluice.h>
 *
 *   SL_STAGE(my_stage)
 *   {
 *       if (ctx->ip_proto == IPPROTO_UDP && ctx->dport == bpf_htons(53))
 *           return sl_drop(skb, ctx, SL_R_PLUGIN_0);
 *       SL_DEBUG(ctx, "my_stage: let it through");
 *       return sl_next(skb, ctx);
 *   }
 *
 * Every stage ends with exactly one verb: sl_next (continue the chain) or
 * sl_drop (with a reason). No stage ends the chain for the stages after it
 * in any other way (the chain protocol, sdk/ABI.md): a redirect is recorded
 * (sl_set_redirect*) and carried out by the core at the chain end, and so is
 * forwarding an established flow by the fast path, which the stages vote on
 * (sl_vote_established / sl_vote_forward / sl_veto_forward). Stages never
 * call bpf_printk directly; SL_INFO/SL_DEBUG add the interface prefix and
 * respect the runtime log level.
 */
#ifndef SLUICE_BPF_SLUICE_H
#define SLUICE_BPF_SLUICE_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "layout.h"

/* ---- shared maps (created by the core, reused by pin name) ---------------- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union sl_pkt_ctx_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SL_JUMP_SLOTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_jump SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct sl_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_settings SEC(".maps");

/* ---- packet context --------------------------------------------------------- */

static __always_inline struct sl_pkt_ctx *sl_pkt_ctx_get(void)
{
	__u32 zero = 0;
	union sl_pkt_ctx_slot *slot = bpf_map_lookup_elem(&sl_state, &zero);

	return slot ? &slot->ctx : 0;
}

/* ---- trace log ------------------------------------------------------------- */

/* The prefix ("cali1----------I:") is printed with "%s " : the kernel
 * rejects a format where %s is directly followed by a letter or digit. */

#define SL_LOG_AT(ctx, level, fmt, ...)                                              \
	do {                                                                           \
		if ((ctx)->log_level >= (level))                                           \
			bpf_printk("%s " fmt, (ctx)->log_prefix, ##__VA_ARGS__);             \
	} while (0)

#define SL_INFO(ctx, fmt, ...) SL_LOG_AT(ctx, SL_LOG_INFO, fmt, ##__VA_ARGS__)
#define SL_DEBUG(ctx, fmt, ...) SL_LOG_AT(ctx, SL_LOG_DEBUG, fmt, ##__VA_ARGS__)

#define SL_REASON_NAME_LEN 32
static const char sl_reason_names[SL_REASON_COUNT][SL_REASON_NAME_LEN] = {
#define SL_REASON(id, num, name, kind, description) [num] = name,
#include "reasons.def"
#undef SL_REASON
};

/* ---- counters and verbs ------------------------------------------------------ */

static __always_inline void sl_count(struct sl_pkt_ctx *ctx, __u32 reason)
{
	__u32 idx = ctx->counter_base + (reason & (SL_REASON_COUNT - 1));
	struct sl_counter *c = bpf_map_lookup_elem(&sl_counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += ctx->pkt_len;
	}
}

/* Ends the packet: counts it under reason, writes the final trace line and
 * returns the tc verdict. */
static __always_inline int sl_finish(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
				     int verdict, __u32 reason)
{
	(void)skb;
	sl_count(ctx, reason);
	if (ctx->log_level >= SL_LOG_INFO) {
		__u64 spent = bpf_ktime_get_ns() - ctx->start_ns;
		const char *word = verdict == TC_ACT_SHOT ? "DENY" :
				   verdict == TC_ACT_REDIRECT ? "REDIRECT" : "ALLOW";

		bpf_printk("%s Final result=%s (%s). Program execution time: %lluns",
			   ctx->log_prefix, word,
			   sl_reason_names[reason & (SL_REASON_COUNT - 1)], spent);
	}
	return verdict;
}

static __always_inline int sl_drop(struct __sk_buff *skb, struct sl_pkt_ctx *ctx, __u32 reason)
{
	return sl_finish(skb, ctx, TC_ACT_SHOT, reason);
}

/* ---- redirects: a stage records one, the chain end carries it out --------------- */

/* Records a redirect that the chain end applies (so every later stage still
 * runs, and may drop). flags: SL_REDIRECT_EGRESS (out of ifindex),
 * SL_REDIRECT_INGRESS (into ifindex's ingress) or SL_REDIRECT_PEER (into the
 * peer of veth ifindex, from an ingress hook: the L2 header is the caller's
 * to set). The stage declares SL_MAY_REDIRECT. */
static __always_inline void sl_set_redirect(struct sl_pkt_ctx *ctx, __u32 ifindex, __u32 flags)
{
	ctx->redirect_ifindex = ifindex;
	ctx->redirect_flags = flags;
}

/* Records a redirect out of ifindex with the L2 header filled in from the
 * neighbour table for next hop nh (IPv4 in nh[0] unless v6). */
static __always_inline void sl_set_redirect_neigh(struct sl_pkt_ctx *ctx, __u32 ifindex,
						  const __be32 *nh, int v6)
{
	ctx->redirect_ifindex = ifindex;
	ctx->redirect_flags = SL_REDIRECT_NEIGH | (v6 ? SL_REDIRECT_NH_V6 : 0);
	ctx->redirect_nh[0] = nh[0];
	if (v6) {
		ctx->redirect_nh[1] = nh[1];
		ctx->redirect_nh[2] = nh[2];
		ctx->redirect_nh[3] = nh[3];
	}
}

/* Carries out the recorded redirect: the chain end's, not a stage's. */
static __always_inline int sl_finish_redirect(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u32 ifindex = ctx->redirect_ifindex, flags = ctx->redirect_flags;
	long verdict;

	if (flags & SL_REDIRECT_NEIGH) {
		struct bpf_redir_neigh nh = {};

		if (flags & SL_REDIRECT_NH_V6) {
			nh.nh_family = 10; /* AF_INET6 */
			__builtin_memcpy(nh.ipv6_nh, ctx->redirect_nh, 16);
		} else {
			nh.nh_family = 2; /* AF_INET */
			nh.ipv4_nh = ctx->redirect_nh[0];
		}
		verdict = bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
	} else if (flags & SL_REDIRECT_PEER) {
		verdict = bpf_redirect_peer(ifindex, 0);
	} else {
		verdict = bpf_redirect(ifindex, (flags & SL_REDIRECT_INGRESS) ? BPF_F_INGRESS : 0);
	}
	return sl_finish(skb, ctx, (int)verdict, SL_R_REDIRECTED);
}

/* ---- votes on forwarding (the chain protocol, sdk/ABI.md) ---------------------- */

/* Conntrack's vote (SL_MAY_VOTE_ESTABLISHED): the packet belongs to an
 * established flow. The rest of the chain is lane 1: the stages after this
 * one that see only first packets are skipped. */
static __always_inline void sl_vote_established(struct sl_pkt_ctx *ctx)
{
	__u8 pos = ctx->est_pos[ctx->stage_pos & (SL_MAX_STAGES - 1)];

	if (ctx->votes & SL_VOTE_ESTABLISHED)
		return;
	ctx->votes |= SL_VOTE_ESTABLISHED;
	if (pos == 0xff) /* the core never builds such a chain: stay on lane 0 */
		return;
	ctx->jump_base = ctx->est_jump_base;
	ctx->stage_pos = pos;
}

/* The packet may leave by the fast path at the chain end (conntrack, for an
 * answered flow), unless a later stage vetoes it or records a redirect. */
static __always_inline void sl_vote_forward(struct sl_pkt_ctx *ctx)
{
	ctx->votes |= SL_VOTE_FORWARD;
}

/* Any stage: this packet must go through the host stack. */
static __always_inline void sl_veto_forward(struct sl_pkt_ctx *ctx)
{
	ctx->votes |= SL_VOTE_VETO;
}

static __always_inline int sl_voted_established(const struct sl_pkt_ctx *ctx)
{
	return (ctx->votes & SL_VOTE_ESTABLISHED) != 0;
}

/* A hole in the chain: counted and handled by the role's rule, never silent. */
static __always_inline int sl_missed_tail_call(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	if (ctx->missed_rule == SL_FAULT_PASS)
		return sl_finish(skb, ctx, TC_ACT_OK, SL_R_PASSED_MISSED_TAIL_CALL);
	SL_DEBUG(ctx, "no program at chain slot %d", ctx->jump_base + ctx->stage_pos);
	return sl_finish(skb, ctx, TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
}

/* Where sl_next jumps, per lane (sdk/ABI.md, "Direct tail calls"). The core
 * loads one instance of each stage program per chain it is in and writes the
 * next stage's slots here, so each tail call has a key the verifier knows
 * and the JIT emits a direct jump (~1 ns) instead of an indirect one (a
 * retpoline, ~16 ns). In the plugin's own load both are
 * SL_NEXT_SLOT_AT_RUN_TIME: the slot is computed from the context, as when
 * the core could not make an instance (layout.h). Its own section, so that an instance
 * gets its own copy and shares every other map with the plugin's load. */
const volatile __u32 sl_next_slot[SL_LANES] SEC(".rodata.sl_next") = {
	SL_NEXT_SLOT_AT_RUN_TIME, SL_NEXT_SLOT_AT_RUN_TIME};

static __always_inline int sl_next(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	ctx->stage_pos++;
	/* Both keys are constants of the instance: one direct jump each. */
	if (ctx->jump_base != ctx->est_jump_base) {
		if (sl_next_slot[SL_LANE_ALL] != SL_NEXT_SLOT_AT_RUN_TIME) {
			bpf_tail_call(skb, &sl_jump, sl_next_slot[SL_LANE_ALL]);
			return sl_missed_tail_call(skb, ctx);
		}
	} else if (sl_next_slot[SL_LANE_ESTABLISHED] != SL_NEXT_SLOT_AT_RUN_TIME) {
		bpf_tail_call(skb, &sl_jump, sl_next_slot[SL_LANE_ESTABLISHED]);
		return sl_missed_tail_call(skb, ctx);
	}
	bpf_tail_call(skb, &sl_jump, (__u32)ctx->jump_base + ctx->stage_pos);
	return sl_missed_tail_call(skb, ctx);
}

/* Declares a stage program. The body sees `skb` and a non-NULL `ctx`. */
#define SL_STAGE(fn)                                                                   \
	static __always_inline int fn##__body(struct __sk_buff *skb,                     \
					      struct sl_pkt_ctx *ctx);                   \
	SEC("tc") int fn(struct __sk_buff *skb)                                          \
	{                                                                              \
		struct sl_pkt_ctx *ctx = sl_pkt_ctx_get();                               \
		if (!ctx)                                                              \
			return TC_ACT_SHOT;                                                \
		return fn##__body(skb, ctx);                                             \
	}                                                                              \
	static __always_inline int fn##__body(struct __sk_buff *skb,                     \
					      struct sl_pkt_ctx *ctx)

#endif /* SLUICE_BPF_SLUICE_H */
