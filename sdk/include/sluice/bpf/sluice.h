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
 * Every stage ends with exactly one verb: sl_next (continue the chain),
 * sl_drop (with a reason), sl_accept (skip the rest, pass to the kernel) or
 * sl_redirect / sl_redirect_peer / sl_redirect_neigh (skip the rest,
 * redirect; counted as "redirected"). Stages never call bpf_printk
 * directly; SL_INFO/SL_DEBUG add the interface prefix and respect the
 * runtime log level.
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
	__type(value, struct sl_pkt_ctx);
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
	return bpf_map_lookup_elem(&sl_state, &zero);
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

static __always_inline int sl_accept(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	return sl_finish(skb, ctx, TC_ACT_OK, SL_R_ACCEPTED);
}

/* Redirects now, skipping the rest of the chain. flags: 0 (egress of ifindex)
 * or BPF_F_INGRESS. */
static __always_inline int sl_redirect(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
				       __u32 ifindex, __u64 flags)
{
	return sl_finish(skb, ctx, (int)bpf_redirect(ifindex, flags), SL_R_REDIRECTED);
}

/* Redirects now into the peer of ifindex (the other end of a veth, in another
 * network namespace), skipping the rest of the chain and the host stack: the
 * packet enters the peer's namespace as if it had arrived there. Ingress
 * hook only (on egress the kernel drops the packet). The L2 header is the
 * caller's to set. */
static __always_inline int sl_redirect_peer(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					    __u32 ifindex)
{
	return sl_finish(skb, ctx, (int)bpf_redirect_peer(ifindex, 0), SL_R_REDIRECTED);
}

/* Redirects now to the egress of ifindex with the L2 header filled in by the
 * neighbour table, for next hop nh (e.g. a bpf_fib_lookup() result; NULL,
 * 0: the kernel looks the route up itself), skipping the rest of the chain. */
static __always_inline int sl_redirect_neigh(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					     __u32 ifindex, struct bpf_redir_neigh *nh,
					     int nh_len)
{
	return sl_finish(skb, ctx, (int)bpf_redirect_neigh(ifindex, nh, nh_len, 0),
			 SL_R_REDIRECTED);
}

/* Records a redirect that the end of the chain applies, so later stages still
 * run (and may drop). */
static __always_inline void sl_set_redirect(struct sl_pkt_ctx *ctx, __u32 ifindex, __u32 flags)
{
	ctx->redirect_ifindex = ifindex;
	ctx->redirect_flags = flags;
}

/* A hole in the chain: counted and handled by the role's rule, never silent. */
static __always_inline int sl_missed_tail_call(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	if (ctx->missed_rule == SL_FAULT_PASS)
		return sl_finish(skb, ctx, TC_ACT_OK, SL_R_PASSED_MISSED_TAIL_CALL);
	SL_DEBUG(ctx, "no program at chain slot %d", ctx->jump_base + ctx->stage_pos);
	return sl_finish(skb, ctx, TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
}

static __always_inline int sl_next(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	ctx->stage_pos++;
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
