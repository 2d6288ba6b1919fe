/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The conntrack stage (order 100, every role and hook): looks the packet's
 * flow up in sl_conntrack, creates a NORMAL entry for a new flow, follows the
 * TCP handshake and teardown per leg, counts packets and bytes per leg, and
 * leaves its result in ctx->scratch[SL_CT_SCRATCH] for the stages after it
 * (encoding in <sluice/bpf/conntrack.h>). It drops only a new flow it cannot
 * track: the table full and table_full = "drop-new" (conntrack-table-full),
 * or the kernel refusing the entry otherwise (conntrack-insert-failed);
 * existing flows are never affected.
 *
 * Votes (the chain protocol, sdk/ABI.md; fast_path = true): a packet of an
 * established flow that its real peer has answered is voted established
 * (the rest of its chain is lane 1: stages that see only first packets are
 * skipped; where judges run, only once they approved the flow) and
 * forwardable (the core's chain end forwards it by the fast path, after
 * every later stage, e.g. nat's rewrite, has run).
 *
 * Settings are read-only data fixed by conntrack.cpp before load.
 */
#include <linux/in.h>
#include <linux/if_ether.h>

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#include <sluice/bpf/sluice.h>
#include <sluice/bpf/conntrack.h>

#include "conntrack_layout.h"
#include "ct_source_check.h"

const volatile __u32 ct_table_full_rule = CT_FULL_DROP_NEW; /* enum ct_table_full_rule */
const volatile __u32 ct_tcp_midstream = 1; /* pick up TCP flows without their SYN */
const volatile __u32 ct_fast_path = 0;     /* redirect established flows (see the top) */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ct_stats SEC(".maps");

#define TCP_F_FIN 0x01
#define TCP_F_SYN 0x02
#define TCP_F_RST 0x04
#define TCP_F_ACK 0x10
#define TCP_F_URG 0x20

/* The flag combinations a TCP segment may carry (netfilter's
 * tcp_valid_flags; PSH, ECE and CWR do not matter). Anything else — SYN|FIN,
 * SYN|RST, FIN without ACK, no flags at all — is no connection's and is
 * dropped before it can create or change an entry. */
static __always_inline int ct_tcp_flags_valid(__u8 flags)
{
	switch (flags & (TCP_F_FIN | TCP_F_SYN | TCP_F_RST | TCP_F_ACK | TCP_F_URG)) {
	case TCP_F_SYN:
	case TCP_F_SYN | TCP_F_URG:
	case TCP_F_SYN | TCP_F_ACK:
	case TCP_F_RST:
	case TCP_F_RST | TCP_F_ACK:
	case TCP_F_FIN | TCP_F_ACK:
	case TCP_F_FIN | TCP_F_ACK | TCP_F_URG:
	case TCP_F_ACK:
	case TCP_F_ACK | TCP_F_URG:
		return 1;
	default:
		return 0;
	}
}

static __always_inline struct ct_stats *ct_stats_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ct_stats, &zero);
}

static __always_inline __u32 ct_leg_bits(const struct sl_pkt_ctx *ctx)
{
	__u32 bits = 0;
	__u8 f = ctx->tcp_flags;

	if (ctx->ip_proto != IPPROTO_TCP)
		return 0;
	if (f & TCP_F_SYN)
		bits |= SL_CT_LEG_SYN;
	if (f & TCP_F_ACK)
		bits |= SL_CT_LEG_ACK;
	if (f & TCP_F_FIN)
		bits |= SL_CT_LEG_FIN;
	if (f & TCP_F_RST)
		bits |= SL_CT_LEG_RST;
	return bits;
}

static __always_inline void ct_leg_account(struct sl_ct_leg *leg, const struct sl_pkt_ctx *ctx,
					   __u32 bits)
{
	leg->packets++;
	leg->bytes += ctx->pkt_len;
	if (ctx->hook == SL_HOOK_INGRESS) /* where this direction enters the node */
		leg->ifindex = ctx->ifindex;
	if ((leg->flags | bits) != leg->flags)
		leg->flags |= bits;
}

static __always_inline __u64 ct_result(__u32 verdict, __u8 proto, const struct sl_ct_value *v,
				       int leg_ba, int via_fwd)
{
	__u32 bits = 0;
	__u32 mine = v->legs[leg_ba & 1].flags, peer = v->legs[!leg_ba].flags;

	if (leg_ba)
		bits |= SL_CT_RES_LEG_BA;
	if (mine & SL_CT_LEG_APPROVED)
		bits |= SL_CT_RES_APPROVED;
	if (peer & SL_CT_LEG_APPROVED)
		bits |= SL_CT_RES_PEER_APPROVED;
	if (via_fwd)
		bits |= SL_CT_RES_VIA_NAT_FWD;
	return sl_ct_result_make(verdict, sl_ct_state_of(proto, v), bits, v->type, v->flags);
}

/* The entry holding the state of `key` (NULL when none), following a NAT_FWD
 * stub to its NAT_REV entry (*via_fwd = 1), and *leg_ba: the leg of that
 * entry for a packet that travels B->A in `key` when pkt_ba is set. Without
 * a stub that is pkt_ba itself. Through a stub, `key` is the pre-DNAT tuple
 * (client <-> service) and the stub's own SL_CT_F_BA says which side of it
 * the client is: the client's packets travel in the NAT_REV entry's opener
 * leg, the other side's (replies after reverse NAT, service -> client, e.g.
 * at the client veth's egress hook) in the other leg. */
static __always_inline struct sl_ct_value *ct_lookup(const struct sl_ct_key *key, int pkt_ba,
						     int *leg_ba, int *via_fwd)
{
	struct sl_ct_value *v = bpf_map_lookup_elem(&sl_conntrack, key);
	const struct sl_ct_key *rev_key = key;

	*via_fwd = 0;
	*leg_ba = pkt_ba;
	if (v && v->type == SL_CT_TYPE_NAT_FWD) {
		int from_client = pkt_ba == ((v->flags & SL_CT_F_BA) ? 1 : 0);

		*via_fwd = 1;
		rev_key = &v->rev_key;
		v = bpf_map_lookup_elem(&sl_conntrack, rev_key);
		if (v) {
			int opener_ba = (v->flags & SL_CT_F_BA) ? 1 : 0;

			*leg_ba = from_client ? opener_ba : !opener_ba;
		}
	}
	if (v && v->type == SL_CT_TYPE_NAT_REV) {
		/* For the nat stage (conntrack.h, sl_ct_found). */
		struct sl_ct_found *found = sl_ct_found_entry();

		if (found) {
			found->key = *rev_key;
			found->value = *v;
		}
	}
	return v;
}

/* ICMP errors carry the start of the packet they are about: look its flow up
 * (no entry is created or refreshed for the error itself). */
static __always_inline __u64 ct_icmp_error(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct sl_ct_key key;
	__u32 off = ctx->l4_off + 8;
	__be32 saddr[4] = {}, daddr[4] = {};
	__u8 inner_proto;
	__u32 l4;
	__u8 ports[8] = {};
	__be16 sport = 0, dport = 0;

	if (ctx->l3_proto == ETH_P_IP) {
		__u8 ip[20];

		if (bpf_skb_load_bytes(skb, off, ip, sizeof(ip)))
			return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
		inner_proto = ip[9];
		l4 = off + (ip[0] & 0xf) * 4u;
		__builtin_memcpy(&saddr[0], &ip[12], 4);
		__builtin_memcpy(&daddr[0], &ip[16], 4);
	} else {
		__u8 ip[40];

		if (bpf_skb_load_bytes(skb, off, ip, sizeof(ip)))
			return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
		inner_proto = ip[6];
		l4 = off + 40;
		__builtin_memcpy(saddr, &ip[8], 16);
		__builtin_memcpy(daddr, &ip[24], 16);
	}
	if (inner_proto == IPPROTO_TCP || inner_proto == IPPROTO_UDP ||
	    inner_proto == IPPROTO_ICMP || inner_proto == IPPROTO_ICMPV6) {
		if (l4 > 0xffff || bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
			return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
		if (inner_proto == IPPROTO_TCP || inner_proto == IPPROTO_UDP) {
			__builtin_memcpy(&sport, &ports[0], 2);
			__builtin_memcpy(&dport, &ports[2], 2);
		} else {
			__builtin_memcpy(&sport, &ports[4], 2); /* echo identifier */
			dport = sport;
		}
	}
	int inner_ba = sl_ct_key_fill(&key, ctx->l3_proto == ETH_P_IP ? 4 : 6, inner_proto, saddr,
				      daddr, sport, dport);
	int via_fwd, quote_leg;
	struct sl_ct_value *v = ct_lookup(&key, inner_ba, &quote_leg, &via_fwd);

	if (!v)
		return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
	/* The error travels against the packet it quotes. */
	return ct_result(SL_CT_RELATED, inner_proto, v, !quote_leg, via_fwd);
}

/* What an ICMP packet is to conntrack: 1 echo request (may open a flow),
 * 2 echo reply (must match one), 3 error (related), 0 not tracked. */
static __always_inline int ct_icmp_kind(const struct sl_pkt_ctx *ctx)
{
	__u8 type = bpf_ntohs(ctx->dport) >> 8;

	if (ctx->ip_proto == IPPROTO_ICMP) {
		if (type == 8)
			return 1;
		if (type == 0)
			return 2;
		if (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)
			return 3;
		return 0;
	}
	if (type == 128)
		return 1;
	if (type == 129)
		return 2;
	if (type >= 1 && type <= 4)
		return 3;
	return 0;
}

/* What this packet of an existing flow is voted (the chain protocol). Once
 * the responder has answered — TCP: SYN seen both ways (the SYN-ACK itself,
 * then everything up to and after the teardown); UDP: seen in both
 * directions — the flow is established: only its first packets have to go
 * through the stages that judge first packets and through the host stack
 * (the answer proves the destination's hooks let it through). Where judges
 * run (SL_CHAIN_F_JUDGED), only once they approved this direction. Flows that
 * need more than a rewrite (SNAT to the node, DSR, node-port forwarding) are
 * established but never forwarded by the fast path. */
enum ct_vote {
	CT_VOTE_NONE = 0,
	CT_VOTE_ESTABLISHED = 1,
	CT_VOTE_FORWARD = 2, /* with CT_VOTE_ESTABLISHED */
};

static __always_inline int ct_vote_of(const struct sl_pkt_ctx *ctx, __u8 proto,
				      const struct sl_ct_value *v, int leg_ba, int tcp_syn)
{
	int ready;

	/* A SYN opens a connection, maybe a new one on an old tuple: first packet. */
	if (tcp_syn)
		return CT_VOTE_NONE;
	/* Answered: the peer's leg has packets of its own (a flow picked up
	 * mid-stream has SYN marked on both legs before any answer). */
	ready = v->legs[0].packets && v->legs[1].packets;
	if (proto == IPPROTO_TCP)
		ready = ready && (v->legs[0].flags & v->legs[1].flags & SL_CT_LEG_SYN) != 0;
	else if (proto != IPPROTO_UDP)
		ready = 0;
	if (!ready)
		return CT_VOTE_NONE;
	if ((ctx->chain_flags & SL_CHAIN_F_JUDGED) &&
	    !(v->legs[leg_ba & 1].flags & SL_CT_LEG_APPROVED))
		return CT_VOTE_NONE;
	if (v->flags & (SL_CT_F_NAT_OUT | SL_CT_F_DSR | SL_CT_F_NP_FWD))
		return CT_VOTE_ESTABLISHED;
	return CT_VOTE_ESTABLISHED | CT_VOTE_FORWARD;
}

/* ct_track's result for a packet that is not a flow's (later fragments,
 * ICMP errors and other ICMP): its source is checked on every packet. */
static __always_inline __u64 ct_checked(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					__u32 *drop, __u64 result)
{
	if (!ct_source_ok(skb, ctx, 0))
		*drop = SL_R_RPF_FAILED;
	return result;
}

/* *drop: 0, or the reason to drop the packet for. */
static __always_inline __u64 ct_track(struct __sk_buff *skb, struct sl_pkt_ctx *ctx, __u32 *drop,
				      int *vote)
{
	struct sl_ct_key key;
	__u8 proto = ctx->ip_proto;
	int icmp = 0;

	if (ctx->l3_proto != ETH_P_IP && ctx->l3_proto != ETH_P_IPV6)
		return sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0);
	if (ctx->flags & SL_PKT_F_LATER_FRAGMENT)
		return ct_checked(skb, ctx, drop, sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0));
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		icmp = ct_icmp_kind(ctx);
		if (icmp == 3)
			return ct_checked(skb, ctx, drop, ct_icmp_error(skb, ctx));
		if (icmp == 0)
			return ct_checked(skb, ctx, drop,
					  sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0));
	}

	if (proto == IPPROTO_TCP && !ct_tcp_flags_valid(ctx->tcp_flags)) {
		SL_DEBUG(ctx, "CT: invalid TCP flags %x: drop", ctx->tcp_flags);
		*drop = SL_R_CT_INVALID_FLAGS;
		return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
	}

	int pkt_ba = sl_ct_key_from_ctx(&key, ctx);
	__u32 bits = ct_leg_bits(ctx);
	__u64 now = bpf_ktime_get_ns();
	int via_fwd, leg_ba;
	struct sl_ct_value *v = ct_lookup(&key, pkt_ba, &leg_ba, &via_fwd);

	if (!ct_source_ok(skb, ctx, v ? v->legs[leg_ba & 1].ifindex : 0)) {
		*drop = SL_R_RPF_FAILED;
		return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
	}
	int tcp_syn = proto == IPPROTO_TCP &&
		      (ctx->tcp_flags & (TCP_F_SYN | TCP_F_ACK | TCP_F_RST)) == TCP_F_SYN;

	if (v) {
		__u32 state = sl_ct_state_of(proto, v);

		if (tcp_syn && !via_fwd &&
		    (state == SL_CT_ST_CLOSED || state == SL_CT_ST_RESET)) {
			/* A new connection on the tuple of a finished one: recycle. */
			__builtin_memset(v->legs, 0, sizeof(v->legs));
			v->created_ns = now;
			v->flags = leg_ba ? SL_CT_F_BA : 0;
			v->last_seen_ns = now;
			ct_leg_account(&v->legs[leg_ba & 1], ctx, bits);
			SL_DEBUG(ctx, "CT: SYN recycles a closed entry");
			return ct_result(SL_CT_NEW, proto, v, leg_ba, 0);
		}
		v->last_seen_ns = now;
		ct_leg_account(&v->legs[leg_ba & 1], ctx, bits);
		int opener_ba = (v->flags & SL_CT_F_BA) ? 1 : 0;
		__u32 verdict = leg_ba == opener_ba ? SL_CT_ESTABLISHED : SL_CT_REPLY;

		SL_DEBUG(ctx, "CT: hit, %s, state %d", verdict == SL_CT_REPLY ? "reply" : "opener",
			 sl_ct_state_of(proto, v));
		if (ct_fast_path)
			*vote = ct_vote_of(ctx, proto, v, leg_ba, tcp_syn);
		return ct_result(verdict, proto, v, leg_ba, via_fwd);
	}

	/* No entry: may this packet open a flow? */
	__u32 flags = leg_ba ? SL_CT_F_BA : 0;

	if (proto == IPPROTO_TCP && !tcp_syn) {
		if (!ct_tcp_midstream || (ctx->tcp_flags & (TCP_F_RST | TCP_F_ACK)) != TCP_F_ACK) {
			SL_DEBUG(ctx, "CT: TCP without SYN matches no flow");
			return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
		}
		flags |= SL_CT_F_MIDSTREAM;
	}
	if (icmp == 2) {
		SL_DEBUG(ctx, "CT: ICMP echo reply matches no flow");
		return sl_ct_result_make(SL_CT_INVALID, 0, 0, 0, 0);
	}

	struct sl_ct_value nv = {};

	nv.created_ns = now;
	nv.last_seen_ns = now;
	nv.type = SL_CT_TYPE_NORMAL;
	nv.flags = flags;
	ct_leg_account(&nv.legs[leg_ba & 1], ctx, bits);
	if (flags & SL_CT_F_MIDSTREAM) {
		/* Picked up established: the reply's ACK completes it. */
		nv.legs[leg_ba & 1].flags |= SL_CT_LEG_SYN;
		nv.legs[!leg_ba].flags |= SL_CT_LEG_SYN;
	}

	long err = bpf_map_update_elem(&sl_conntrack, &key, &nv, BPF_NOEXIST);
	struct ct_stats *stats = ct_stats_get();

	if (err == -17 /* EEXIST: another CPU created it (or a stale NAT_FWD stub) */) {
		v = ct_lookup(&key, pkt_ba, &leg_ba, &via_fwd);
		if (!v) {
			if (bpf_map_update_elem(&sl_conntrack, &key, &nv, BPF_ANY))
				return sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0);
			if (stats)
				stats->created++;
			return ct_result(SL_CT_NEW, proto, &nv, leg_ba, 0);
		}
		v->last_seen_ns = now;
		ct_leg_account(&v->legs[leg_ba & 1], ctx, bits);
		return ct_result(((v->flags & SL_CT_F_BA) ? 1 : 0) == leg_ba ? SL_CT_ESTABLISHED
									       : SL_CT_REPLY,
				 proto, v, leg_ba, via_fwd);
	}
	if (sl_ct_write_of(err) == SL_CT_WRITE_FAILED) {
		/* Not for want of room (the table is preallocated, so hardly
		 * ever): no table_full rule covers it, and an untracked first
		 * packet would let the flow skip what needs its entry. */
		SL_DEBUG(ctx, "CT: the kernel refused a new entry (%ld)", err);
		*drop = SL_R_CT_INSERT_FAILED;
		return sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0);
	}
	if (err) {
		/* -E2BIG: the table is full. Existing flows are unaffected. */
		if (ct_table_full_rule == CT_FULL_PASS_UNTRACKED) {
			if (stats)
				stats->full_passed++;
			SL_DEBUG(ctx, "CT: table full, passing untracked");
			return sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0);
		}
		if (stats)
			stats->full_dropped++;
		SL_DEBUG(ctx, "CT: table full, dropping a new flow");
		*drop = SL_R_CT_TABLE_FULL;
		return sl_ct_result_make(SL_CT_UNTRACKED, 0, 0, 0, 0);
	}
	if (stats)
		stats->created++;
	SL_DEBUG(ctx, "CT: new flow");
	return ct_result(SL_CT_NEW, proto, &nv, leg_ba, 0);
}

SL_STAGE(conntrack_stage)
{
	__u32 drop = 0;
	int vote = CT_VOTE_NONE;

	ctx->scratch[SL_CT_SCRATCH] = ct_track(skb, ctx, &drop, &vote);
	if (drop)
		return sl_drop(skb, ctx, drop);
	if (vote & CT_VOTE_FORWARD)
		sl_vote_forward(ctx);
	if (vote & CT_VOTE_ESTABLISHED) {
		SL_DEBUG(ctx, "CT: established%s", (vote & CT_VOTE_FORWARD) ? ", forwardable" : "");
		sl_vote_established(ctx);
	}
	return sl_next(skb, ctx);
}

char LICENSE[] SEC("license") = "GPL";
