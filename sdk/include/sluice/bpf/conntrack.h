/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The connection tracking table, shared by the conntrack plugin (its owner:
 * it creates the map, tracks every flow and expires entries) and the plugins
 * that read or extend it (policy: the per-direction "approved" bit; nat:
 * NAT_FWD / NAT_REV pairs).
 *
 * The map is pinned by name, <pin dir>/maps/sl_conntrack, so every object
 * that includes this header and opens with pin_root_path = the map pin dir
 * shares it. It is a BPF_MAP_TYPE_HASH, not an LRU hash: an LRU would evict
 * established flows silently when it fills up; here a full table is a
 * defined, counted event (the conntrack plugin's `table_full` rule) and only
 * the cleaner removes entries.
 *
 * Its size is set by the conntrack plugin before load ([plugins.conntrack]
 * table_size, default SL_CT_DEFAULT_ENTRIES). libbpf reuses a pinned map only
 * when max_entries matches, so another plugin that includes this header must
 * load after conntrack (requires_plugins() = {"conntrack"}) and, before its
 * own load, set bpf_map__set_max_entries() to the pinned map's max_entries
 * (bpf_obj_get + bpf_obj_get_info_by_fd).
 *
 * Layout rules: append only; a change of key or value size or meaning
 * renames the map (sl_conntrack -> sl_conntrack2), see sdk/ABI.md.
 *
 * ---- The key ----------------------------------------------------------------
 * Normalised as in Calico: (addr_a, port_a) is the lower of the two endpoints
 * (addresses compared as bytes, then ports), so both directions of a flow hit
 * the same entry. IPv4 addresses are in word 0, the other words zero; family
 * tells the two apart. ICMP echo uses the identifier as both ports; other
 * protocols without ports use 0.
 *
 * ---- The value -----------------------------------------------------------------
 * type NORMAL:   a flow without NAT; holds the state.
 * type NAT_FWD:  a stub keyed on the pre-DNAT tuple (client -> service);
 *                rev_key names the NAT_REV entry that holds the state.
 * type NAT_REV:  keyed on the post-DNAT tuple (client -> backend); holds the
 *                state like NORMAL plus the original (pre-NAT) addresses.
 * legs[0] is A->B (packets whose source is addr_a/port_a), legs[1] B->A.
 * SL_CT_F_BA says which side opened the flow (set: B).
 *
 * ---- The result in the packet context -----------------------------------------
 * The conntrack stage (order 100) writes its result into ctx->scratch[0] for
 * the stages after it (policy 200, nat 300, ...):
 *
 *   bits  0..7   enum sl_ct_verdict (SL_CT_NONE = 0: conntrack did not run)
 *   bits  8..15  enum sl_ct_state of the entry after this packet
 *   bit   16     SL_CT_RES_LEG_BA: the packet travels B->A (its leg is legs[1])
 *   bit   17     SL_CT_RES_APPROVED: the packet's leg is approved (policy)
 *   bit   18     SL_CT_RES_PEER_APPROVED: the other leg is approved
 *   bit   19     SL_CT_RES_VIA_NAT_FWD: found through a NAT_FWD stub
 *   bit   20     unused (layout 1: "fast"; the chain protocol's votes replace it)
 *   bits 24..31  enum sl_ct_type of the entry holding the state
 *   bits 32..63  the entry's flags (SL_CT_F_*)
 *
 * Read it with sl_ct_result_verdict(ctx->scratch[0]) etc.
 *
 * ---- Writing ---------------------------------------------------------------------
 * Entries are written only through this header: the conntrack stage makes
 * NORMAL ones, sl_ct_create_nat_pair() the NAT_FWD / NAT_REV pair of a NAT
 * flow, sl_ct_forget_new_flow() / sl_ct_delete() remove them; failures come
 * back as enum sl_ct_write, whose drop reason is sl_ct_write_reason().
 */
#ifndef SLUICE_BPF_CONNTRACK_H
#define SLUICE_BPF_CONNTRACK_H

/* BPF calls take at most five arguments: every helper here must be inlined
 * into the stage, not left to clang's judgement. */
#if defined(__bpf__) || defined(__BPF__)
#define SL_CT_INLINE static inline __attribute__((always_inline))
#else
#define SL_CT_INLINE static inline
#endif

#include <linux/types.h>

#include "layout.h"

#define SL_MAP_CONNTRACK "sl_conntrack"
#define SL_CT_DEFAULT_ENTRIES 262144u
#define SL_CT_SCRATCH SL_SCRATCH_CT_RESULT /* ctx->scratch[] word holding the result */

enum sl_ct_type {
	SL_CT_TYPE_NORMAL = 0,
	SL_CT_TYPE_NAT_FWD = 1,
	SL_CT_TYPE_NAT_REV = 2,
};

/* What the conntrack stage found for a packet. */
enum sl_ct_verdict {
	SL_CT_NONE = 0,        /* conntrack did not run (not in the chain) */
	SL_CT_NEW = 1,         /* no entry: this packet created one (or recycled a closed one) */
	SL_CT_ESTABLISHED = 2, /* known flow, the opener's direction */
	SL_CT_REPLY = 3,       /* known flow, the reply direction */
	SL_CT_RELATED = 4,     /* ICMP error about a tracked flow (no entry of its own) */
	SL_CT_INVALID = 5,     /* cannot start a flow and matches none: TCP without SYN
				* (mid-stream pickup off), ICMP echo reply or error
				* about an unknown flow */
	SL_CT_UNTRACKED = 6,   /* not tracked: non-first fragment, ICMP type not
				* tracked, table full with table_full = "pass-untracked" */
};

/* State of an entry, derived from its legs by sl_ct_state_of(). */
enum sl_ct_state {
	SL_CT_ST_ACTIVE = 0,      /* not TCP: no handshake */
	SL_CT_ST_SYN_SENT = 1,    /* opener sent SYN */
	SL_CT_ST_SYN_RECV = 2,    /* responder answered SYN-ACK */
	SL_CT_ST_ESTABLISHED = 3, /* both sides SYN and ACK */
	SL_CT_ST_FIN_WAIT = 4,    /* one side sent FIN (half closed: may still carry data) */
	SL_CT_ST_CLOSED = 5,      /* both sides sent FIN */
	SL_CT_ST_RESET = 6,       /* a RST was seen */
	SL_CT_ST_COUNT = 7,
};

/* Entry flags (value.flags); numbers and dump names follow Calico's. */
#define SL_CT_F_NAT_OUT (1u << 0)   /* "nat-out": SNAT to the node for outgoing traffic */
#define SL_CT_F_DSR (1u << 1)       /* "fwd-dsr": forwarded in DSR mode */
#define SL_CT_F_NP_FWD (1u << 2)    /* "np-fwd": node port forwarded to a remote backend (tun_ip) */
#define SL_CT_F_EXT_LOCAL (1u << 6) /* "ext-local": external client, local backend */
#define SL_CT_F_BA (1u << 8)        /* "B-A": side B opened the flow */
#define SL_CT_F_SVC_SELF (1u << 10) /* "svc-self": hairpin, a backend reaching itself through
				     * its service: source NATed too (NAT_REV orig_src/sport) */
#define SL_CT_F_SRC_NAT (1u << 11)  /* "src-nat": an external client source-NATed to the node
				     * for a backend on another node (NAT_REV orig_src/sport;
				     * the NAT_REV key's opener side is the node's address) */
#define SL_CT_F_PORT_NAT (1u << 12) /* "port-nat": the client's source port was changed, as
				     * its post-DNAT tuple was another flow's (two services
				     * sharing a backend, one client port; NAT_REV orig_sport) */
/* The NAT_REV key's opener side is not the client's own address and port
 * (orig_src / orig_sport): the client's packets are source-NATed too. */
#define SL_CT_F_SOURCE_NATED (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT | SL_CT_F_PORT_NAT)
#define SL_CT_F_MIDSTREAM (1u << 16) /* "midstream": TCP picked up without its SYN */
#define SL_CT_F_NODE_ADDR (1u << 17) /* "node-addr": the client asked for an address of this
				      * node (a node port, an external IP the node holds);
				      * the nat stage routes the replies itself */

/* Leg flags (legs[i].flags). */
#define SL_CT_LEG_SYN (1u << 0)
#define SL_CT_LEG_ACK (1u << 1)
#define SL_CT_LEG_FIN (1u << 2)
#define SL_CT_LEG_RST (1u << 3)
#define SL_CT_LEG_APPROVED (1u << 4) /* policy allowed this direction */

/* Result bits in ctx->scratch[SL_CT_SCRATCH] (see the top of this file). */
#define SL_CT_RES_LEG_BA (1u << 16)
#define SL_CT_RES_APPROVED (1u << 17)
#define SL_CT_RES_PEER_APPROVED (1u << 18)
#define SL_CT_RES_VIA_NAT_FWD (1u << 19)

struct sl_ct_key {
	__u8 proto;  /* IPPROTO_* */
	__u8 family; /* 4 or 6 */
	__u16 pad;   /* zero */
	__be16 port_a;
	__be16 port_b;
	__be32 addr_a[4];
	__be32 addr_b[4];
}; /* 40 bytes */

struct sl_ct_leg {
	__u64 packets;
	__u64 bytes;
	__u32 ifindex; /* interface this direction last entered the node by */
	__u32 flags;   /* SL_CT_LEG_* */
}; /* 24 bytes */

struct sl_ct_value {
	__u64 created_ns;   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 last_seen_ns; /* CLOCK_MONOTONIC; NAT_FWD: unused (its NAT_REV's counts) */
	__u8 type;          /* enum sl_ct_type */
	__u8 reserved0[3];
	__u32 flags;        /* SL_CT_F_* */
	union {
		struct { /* NORMAL and NAT_REV */
			struct sl_ct_leg legs[2];  /* [0] A->B, [1] B->A */
			__be32 tun_ip[4];          /* np-fwd: the remote node (IPv4 in [0]) */
			__be32 orig_dst[4];        /* NAT_REV: pre-DNAT destination */
			__be32 orig_src[4];        /* NAT_REV: pre-SNAT source */
			__be16 orig_dport;
			__be16 orig_sport;
			__u32 reserved1;
		};
		struct { /* NAT_FWD */
			struct sl_ct_key rev_key; /* the NAT_REV entry */
			__be16 nat_sport;         /* source port after SNAT, if changed */
			__u16 reserved2[3];
		};
	};
}; /* 128 bytes */

/* ---- result word ------------------------------------------------------------ */

SL_CT_INLINE __u64 sl_ct_result_make(__u32 verdict, __u32 state, __u32 bits, __u32 type,
				      __u32 flags)
{
	return (__u64)(verdict & 0xff) | ((__u64)(state & 0xff) << 8) | (__u64)(bits & 0xff0000u) |
	       ((__u64)(type & 0xff) << 24) | ((__u64)flags << 32);
}
SL_CT_INLINE __u32 sl_ct_result_verdict(__u64 r) { return (__u32)(r & 0xff); }
SL_CT_INLINE __u32 sl_ct_result_state(__u64 r) { return (__u32)((r >> 8) & 0xff); }
SL_CT_INLINE __u32 sl_ct_result_type(__u64 r) { return (__u32)((r >> 24) & 0xff); }
SL_CT_INLINE __u32 sl_ct_result_flags(__u64 r) { return (__u32)(r >> 32); }
SL_CT_INLINE int sl_ct_result_has(__u64 r, __u32 bit) { return (r & bit) != 0; }

/* ---- state ------------------------------------------------------------------- */

/* The TCP state of a NORMAL/NAT_REV entry (SL_CT_ST_ACTIVE for other
 * protocols). Shared by the stage, the cleaner and sluicectl. */
SL_CT_INLINE __u32 sl_ct_state_of(__u8 proto, const struct sl_ct_value *v)
{
	__u32 a = v->legs[0].flags, b = v->legs[1].flags;
	const __u32 syn_ack = SL_CT_LEG_SYN | SL_CT_LEG_ACK;

	if (proto != 6 /* IPPROTO_TCP */)
		return SL_CT_ST_ACTIVE;
	if ((a | b) & SL_CT_LEG_RST)
		return SL_CT_ST_RESET;
	if ((a & SL_CT_LEG_FIN) && (b & SL_CT_LEG_FIN))
		return SL_CT_ST_CLOSED;
	if ((a | b) & SL_CT_LEG_FIN)
		return SL_CT_ST_FIN_WAIT;
	if ((a & syn_ack) == syn_ack && (b & syn_ack) == syn_ack)
		return SL_CT_ST_ESTABLISHED;
	/* The responder's leg has SYN+ACK once it answered. */
	if (((v->flags & SL_CT_F_BA) ? a : b) & SL_CT_LEG_SYN)
		return SL_CT_ST_SYN_RECV;
	return SL_CT_ST_SYN_SENT;
}

/* Which timeout applies to an entry (index into the conntrack plugin's
 * timeout table, [plugins.conntrack] timeouts). */
enum sl_ct_timeout {
	SL_CT_TO_TCP_SYN = 0,         /* SYN_SENT, SYN_RECV */
	SL_CT_TO_TCP_ESTABLISHED = 1, /* ESTABLISHED, FIN_WAIT */
	SL_CT_TO_TCP_FIN = 2,         /* CLOSED */
	SL_CT_TO_TCP_RST = 3,         /* RESET */
	SL_CT_TO_UDP = 4,
	SL_CT_TO_ICMP = 5,            /* ICMP and ICMPv6 */
	SL_CT_TO_OTHER = 6,
	SL_CT_TO_COUNT = 7,
};

SL_CT_INLINE __u32 sl_ct_timeout_of(__u8 proto, __u32 state)
{
	switch (proto) {
	case 6: /* TCP */
		switch (state) {
		case SL_CT_ST_RESET: return SL_CT_TO_TCP_RST;
		case SL_CT_ST_CLOSED: return SL_CT_TO_TCP_FIN;
		case SL_CT_ST_ESTABLISHED:
		case SL_CT_ST_FIN_WAIT: return SL_CT_TO_TCP_ESTABLISHED;
		default: return SL_CT_TO_TCP_SYN;
		}
	case 17: return SL_CT_TO_UDP;
	case 1:
	case 58: return SL_CT_TO_ICMP;
	default: return SL_CT_TO_OTHER;
	}
}

/* The timeout of an entry: its state's, except that a TCP flow the responder
 * never answered lives no longer than a handshake whatever flags its opener
 * sent (a lone FIN|ACK picked up mid-stream would otherwise sit in FIN-WAIT
 * for the established timeout, and a few such packets a second fill the
 * table). Shared by the cleaner and sluicectl. */
SL_CT_INLINE __u32 sl_ct_timeout_for(__u8 proto, const struct sl_ct_value *v)
{
	const struct sl_ct_leg *responder = &v->legs[(v->flags & SL_CT_F_BA) ? 0 : 1];

	if (proto == 6 /* TCP */ && !responder->packets)
		return SL_CT_TO_TCP_SYN;
	return sl_ct_timeout_of(proto, sl_ct_state_of(proto, v));
}

/* ---- key ----------------------------------------------------------------------- */

/* Fills a normalised key from one packet's tuple; returns 1 when the
 * packet's source is endpoint B (the packet travels B->A), else 0. */
SL_CT_INLINE int sl_ct_key_fill(struct sl_ct_key *key, __u8 family, __u8 proto,
				 const __be32 *saddr, const __be32 *daddr, __be16 sport,
				 __be16 dport)
{
	int src_is_b = 0;
	int decided = 0;
	int i;

	key->proto = proto;
	key->family = family;
	key->pad = 0;
	/* Compare as bytes (network order), word by word. */
	for (i = 0; i < 4; i++) {
		__u32 s = __builtin_bswap32(saddr[i]), d = __builtin_bswap32(daddr[i]);

		if (!decided && s != d) {
			src_is_b = s > d;
			decided = 1;
		}
	}
	if (!decided)
		src_is_b = __builtin_bswap16(sport) > __builtin_bswap16(dport);
	for (i = 0; i < 4; i++) {
		key->addr_a[i] = src_is_b ? daddr[i] : saddr[i];
		key->addr_b[i] = src_is_b ? saddr[i] : daddr[i];
	}
	key->port_a = src_is_b ? dport : sport;
	key->port_b = src_is_b ? sport : dport;
	return src_is_b;
}

#ifdef __bpf__
/* ---- BPF side: the map and lookups ------------------------------------------------ */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_CT_DEFAULT_ENTRIES);
	__type(key, struct sl_ct_key);
	__type(value, struct sl_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_conntrack SEC(".maps");

/* The NAT_REV entry the conntrack stage found for the packet being
 * processed on this CPU: its key and a copy of its value, so a later stage
 * (nat) rewrites from it without looking the stub and the entry up again.
 * Written for every packet whose result has type NAT_REV and verdict
 * SL_CT_ESTABLISHED or SL_CT_REPLY; read it only for such a packet. Per CPU,
 * like the packet context: a packet's stages run on one CPU. */
#define SL_MAP_CT_FOUND "sl_ct_found"
struct sl_ct_found {
	struct sl_ct_key key;
	struct sl_ct_value value;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_ct_found);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ct_found SEC(".maps");

static __always_inline struct sl_ct_found *sl_ct_found_entry(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_ct_found, &zero);
}

/* For the stage that has just made the packet's flow a NAT flow (its
 * NAT_FWD stub and NAT_REV entry): conntrack's result word, owned by
 * conntrack (scratch.def), then describes the NAT_REV entry, with its flags
 * and the packet's leg there, as it will for the flow's later packets. */
static __always_inline void sl_ct_result_now_nat(struct sl_pkt_ctx *ctx, __u32 ct_flags,
						 int rev_ba)
{
	__u64 r = ctx->scratch[SL_CT_SCRATCH];

	r &= ~((0xffull << 24) | (__u64)SL_CT_RES_LEG_BA);
	r |= ((__u64)SL_CT_TYPE_NAT_REV << 24) | ((__u64)ct_flags << 32);
	if (rev_ba)
		r |= SL_CT_RES_LEG_BA;
	ctx->scratch[SL_CT_SCRATCH] = r;
}

/* The key of the packet in ctx (ICMP echo: the identifier as both ports).
 * Returns 1 when the packet travels B->A. */
static __always_inline int sl_ct_key_from_ctx(struct sl_ct_key *key, const struct sl_pkt_ctx *ctx)
{
	__be16 sport = ctx->sport, dport = ctx->dport;

	if (ctx->ip_proto == 1 /* ICMP */ || ctx->ip_proto == 58 /* ICMPv6 */)
		dport = sport;
	else if (ctx->ip_proto != 6 && ctx->ip_proto != 17 && ctx->ip_proto != 132)
		sport = dport = 0;
	if (ctx->flags & SL_PKT_F_LATER_FRAGMENT)
		sport = dport = 0;
	return sl_ct_key_fill(key, ctx->l3_proto == 0x86DD ? 6 : 4, ctx->ip_proto, ctx->saddr,
			      ctx->daddr, sport, dport);
}

/* The entry holding the state of `key`: follows a NAT_FWD stub to its
 * NAT_REV entry. *via_fwd is set when it did. NULL when none.
 * It does not tell which leg a packet belongs to when it came through a
 * stub: for that, compare the packet's orientation in the stub's key with
 * the stub's own SL_CT_F_BA (the client's side), as the conntrack stage does;
 * better still, read the direction from the CT result in ctx->scratch[0]. */
static __always_inline struct sl_ct_value *sl_ct_lookup(const struct sl_ct_key *key, int *via_fwd)
{
	struct sl_ct_value *v = bpf_map_lookup_elem(&sl_conntrack, key);

	*via_fwd = 0;
	if (v && v->type == SL_CT_TYPE_NAT_FWD) {
		*via_fwd = 1;
		v = bpf_map_lookup_elem(&sl_conntrack, &v->rev_key);
	}
	return v;
}

/* A judge's approval (the chain protocol, sdk/ABI.md): a stage that sees
 * only first packets and may drop calls it for a packet it lets through. The
 * approval of the chain's last judge (ctx->last_judge_pos) is the flow's:
 * conntrack records it on the packet's leg, and once the flow is established
 * it votes that leg's later packets established, so the judges are skipped
 * for them. Earlier judges' calls change nothing (a later one may still
 * drop). The stage declares SL_MAY_APPROVE and reads ct-result. */
static __always_inline void sl_ct_approve(const struct sl_pkt_ctx *ctx)
{
	__u64 r = ctx->scratch[SL_CT_SCRATCH];
	struct sl_ct_key key;
	int via_fwd;

	if (ctx->stage_pos != ctx->last_judge_pos || sl_ct_result_verdict(r) == SL_CT_NONE ||
	    sl_ct_result_verdict(r) == SL_CT_UNTRACKED || sl_ct_result_verdict(r) == SL_CT_INVALID)
		return;
	sl_ct_key_from_ctx(&key, ctx);
	struct sl_ct_value *v = sl_ct_lookup(&key, &via_fwd);
	if (!v)
		return;
	__u32 *flags = &v->legs[sl_ct_result_has(r, SL_CT_RES_LEG_BA) ? 1 : 0].flags;
	if (!(*flags & SL_CT_LEG_APPROVED))
		*flags |= SL_CT_LEG_APPROVED; /* as conntrack updates legs: one writer per leg at a time */
}

/* ---- writing entries ---------------------------------------------------------------
 * Only conntrack's own code writes the table's entries; a stage that needs
 * entries of its own kind (nat's NAT pairs) asks for them here, so their
 * layout, the orientation of keys and the meaning of a refusal stay in one
 * place. */

/* What became of a write to the table. */
enum sl_ct_write {
	SL_CT_WRITE_OK = 0,
	SL_CT_WRITE_TAKEN = 1,      /* exclusive write: the key is another flow's */
	SL_CT_WRITE_TABLE_FULL = 2, /* no room (-E2BIG) */
	SL_CT_WRITE_FAILED = 3,     /* the kernel refused for another reason */
};

static __always_inline enum sl_ct_write sl_ct_write_of(long err)
{
	if (!err)
		return SL_CT_WRITE_OK;
	if (err == -17 /* EEXIST */)
		return SL_CT_WRITE_TAKEN;
	if (err == -7 /* E2BIG */)
		return SL_CT_WRITE_TABLE_FULL;
	return SL_CT_WRITE_FAILED;
}

/* The drop reason of a failed write (a taken key is the caller's to name:
 * for a source NAT it means its ports are exhausted). */
static __always_inline __u32 sl_ct_write_reason(enum sl_ct_write w)
{
	return w == SL_CT_WRITE_TABLE_FULL ? SL_R_CT_TABLE_FULL : SL_R_CT_INSERT_FAILED;
}

static __always_inline void sl_ct_delete(const struct sl_ct_key *key)
{
	bpf_map_delete_elem(&sl_conntrack, key);
}

/* Forgets the flow conntrack opened for this packet (verdict SL_CT_NEW, a
 * NORMAL entry), for a stage that refuses the flow's first packet: a retry
 * must be a new flow again, not an established one that skips the stage. */
static __always_inline void sl_ct_forget_new_flow(const struct sl_pkt_ctx *ctx)
{
	struct sl_ct_key key;
	struct sl_ct_value *v;

	if (sl_ct_result_verdict(ctx->scratch[SL_CT_SCRATCH]) != SL_CT_NEW)
		return;
	sl_ct_key_from_ctx(&key, ctx);
	v = bpf_map_lookup_elem(&sl_conntrack, &key);
	if (v && v->type == SL_CT_TYPE_NORMAL)
		sl_ct_delete(&key);
}

/* A flow's tuple after NAT: its NAT_REV entry's key. */
struct sl_ct_nat_tuple {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
};

/* The post-NAT tuple must be free, never another flow's: two services that
 * share a backend, reached from one client port, map to one post-DNAT tuple,
 * and the node's address is shared by every client a source NAT stands in
 * for. The flow's own source port is tried first (its key may hold this
 * flow's own leftover, the same pre-NAT tuple: that is replaced), then
 * `tries - 1` others in [min, min + span) picked from `hash` (at most
 * SL_CT_PORT_TRIES_MAX in all); an entry that takes another port gets
 * `flags_if_moved`. */
#define SL_CT_PORT_TRIES_MAX 16
struct sl_ct_port_search {
	__u32 hash;
	__u32 min;
	__u32 span;
	__u32 tries;
	__u32 flags_if_moved;
};

/* Where sl_ct_create_nat_pair() builds the entries: a value's worth and a
 * key's outside the stack (a slot of the caller's per-CPU array), as the
 * stack cannot spare them and, for the verifier, memory it does not track
 * makes every try of the port search end in the same state. */
struct sl_ct_room {
	struct sl_ct_key key;
	struct sl_ct_value value;
};

/* One try of the port search (a bpf_loop() callback: the verifier walks it
 * once, not once per try with all that follows). */
struct sl_ct_port_try {
	struct sl_ct_room *room;
	struct sl_ct_port_search search;
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 proto;
	int post_ba;
	long err;
};

/* Whether the entry at `key` is a NAT_REV entry of the same pre-NAT flow as
 * `mine` (a leftover of this very flow, such as a finished connection whose
 * client reuses its port): replacing it breaks no other flow. */
static __always_inline int sl_ct_same_pre_nat(const struct sl_ct_key *key,
					      const struct sl_ct_value *mine)
{
	const struct sl_ct_value *held = bpf_map_lookup_elem(&sl_conntrack, key);
	__u32 differ = 0;
	int i;

	if (!held || held->type != SL_CT_TYPE_NAT_REV || held->orig_sport != mine->orig_sport ||
	    held->orig_dport != mine->orig_dport)
		return 0;
	for (i = 0; i < 4; i++)
		differ |= (held->orig_src[i] ^ mine->orig_src[i]) | (held->orig_dst[i] ^ mine->orig_dst[i]);
	return !differ;
}

static long sl_ct_port_try_one(__u64 i, void *data)
{
	struct sl_ct_port_try *t = data;
	__be16 sport = t->sport;

	if (i) {
		sport = bpf_htons(t->search.min + (t->search.hash + (__u32)i * 7919u) % t->search.span);
		/* Addresses differ, so the orientation cannot change. */
		if (sl_ct_key_fill(&t->room->key, t->family, t->proto, t->saddr, t->daddr, sport,
				   t->dport) != t->post_ba)
			return 0;
		t->room->value.flags |= t->search.flags_if_moved;
	}
	t->err = bpf_map_update_elem(&sl_conntrack, &t->room->key, &t->room->value, BPF_NOEXIST);
	if (t->err == -17 /* EEXIST */ && !i && sl_ct_same_pre_nat(&t->room->key, &t->room->value))
		t->err = bpf_map_update_elem(&sl_conntrack, &t->room->key, &t->room->value, BPF_EXIST);
	return t->err == -17 /* EEXIST: taken, try the next */ ? 0 : 1;
}

/* Makes the packet's flow a NAT flow: a NAT_REV entry on the post-NAT tuple
 * `post`, which holds the state (that of the NORMAL entry conntrack made for
 * the pre-NAT tuple, if there is one; else this packet's), ct_flags and the
 * original addresses and ports; and the pre-NAT tuple's entry becomes a
 * NAT_FWD stub naming it.
 *
 * The post-NAT tuple must be free (or hold this flow's own leftover): the
 * source port is searched as described above (search.tries of at least 1)
 * and post->sport tells the one taken; SL_CT_WRITE_TAKEN when none was free.
 *
 * *rev_ba: whether `post` is B->A in the NAT_REV key (for
 * sl_ct_result_now_nat()). Nothing is left behind when the result is not
 * SL_CT_WRITE_OK. */
static __always_inline enum sl_ct_write
sl_ct_create_nat_pair(const struct sl_pkt_ctx *ctx, struct sl_ct_nat_tuple *post, __u32 ct_flags,
		      const struct sl_ct_port_search search, struct sl_ct_room *room, int *rev_ba)
{
	struct sl_ct_key fwd_key;
	__u8 family = ctx->l3_proto == 0x86DD ? 6 : 4;
	int pre_ba = sl_ct_key_from_ctx(&fwd_key, ctx);
	int post_ba = sl_ct_key_fill(&room->key, family, ctx->ip_proto, post->saddr, post->daddr,
				     post->sport, post->dport);
	struct sl_ct_value *normal = bpf_map_lookup_elem(&sl_conntrack, &fwd_key);
	__u64 now = bpf_ktime_get_ns();
	struct sl_ct_value *rev = &room->value;
	enum sl_ct_write w;

	*rev_ba = post_ba;
	__builtin_memset(rev, 0, sizeof(*rev));
	rev->created_ns = now;
	rev->last_seen_ns = now;
	if (normal && normal->type == SL_CT_TYPE_NORMAL) {
		rev->created_ns = normal->created_ns;
		rev->flags = normal->flags & ~SL_CT_F_BA;
		rev->legs[post_ba & 1] = normal->legs[pre_ba & 1];
		rev->legs[!post_ba] = normal->legs[!pre_ba];
	} else {
		struct sl_ct_leg *leg = &rev->legs[post_ba & 1];

		leg->packets = 1;
		leg->bytes = ctx->pkt_len;
		leg->ifindex = ctx->ifindex;
		if (ctx->ip_proto == 6 /* TCP */ && (ctx->tcp_flags & 0x02 /* SYN */))
			leg->flags = SL_CT_LEG_SYN;
	}
	rev->type = SL_CT_TYPE_NAT_REV;
	rev->flags |= ct_flags | (post_ba ? SL_CT_F_BA : 0);
	__builtin_memcpy(rev->orig_dst, ctx->daddr, sizeof(rev->orig_dst));
	__builtin_memcpy(rev->orig_src, ctx->saddr, sizeof(rev->orig_src));
	rev->orig_dport = ctx->dport;
	rev->orig_sport = ctx->sport;
	{
		struct sl_ct_port_try t = {.room = room,
					   .search = search,
					   .sport = post->sport,
					   .dport = post->dport,
					   .family = family,
					   .proto = ctx->ip_proto,
					   .post_ba = post_ba,
					   .err = -17 /* EEXIST */};

		__builtin_memcpy(t.saddr, post->saddr, sizeof(t.saddr));
		__builtin_memcpy(t.daddr, post->daddr, sizeof(t.daddr));
		bpf_loop(search.tries < 1 ? 1
			 : search.tries < SL_CT_PORT_TRIES_MAX ? search.tries : SL_CT_PORT_TRIES_MAX,
			 sl_ct_port_try_one, &t, 0);
		w = sl_ct_write_of(t.err);
		/* The port the key holds: the post-NAT source's side. */
		post->sport = post_ba ? room->key.port_b : room->key.port_a;
	}
	if (w != SL_CT_WRITE_OK)
		return w;

	/* The same room, now for the stub. */
	struct sl_ct_value *fwd = rev;
	__u64 created = rev->created_ns;
	__u32 moved = rev->flags & search.flags_if_moved;

	__builtin_memset(fwd, 0, sizeof(*fwd));
	fwd->created_ns = created;
	fwd->last_seen_ns = now;
	fwd->type = SL_CT_TYPE_NAT_FWD;
	fwd->flags = (pre_ba ? SL_CT_F_BA : 0) | ct_flags | moved;
	fwd->rev_key = room->key;
	fwd->nat_sport = post->sport;
	w = sl_ct_write_of(bpf_map_update_elem(&sl_conntrack, &fwd_key, fwd, BPF_ANY));
	if (w != SL_CT_WRITE_OK)
		sl_ct_delete(&room->key);
	return w;
}
#endif /* __bpf__ */

#endif /* SLUICE_BPF_CONNTRACK_H */
