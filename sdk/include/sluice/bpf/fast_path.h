/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The fast path: forwarding a packet of an answered flow straight to its
 * destination from the ingress hook, past the host's routing and netfilter.
 * The core's chain end does it (sl_fast_forward()) for a packet the stages
 * voted for (the chain protocol, sdk/ABI.md): every stage of the chain has
 * run, so the route is looked up for the packet as it leaves (after NAT).
 *
 * The route comes from bpf_fib_lookup() (sl_fast_route()), remembered per
 * (arrival interface, source, destination, TOS) in the core's route cache
 * (route_cache.h; the daemon invalidates it on every routing change). A destination
 * behind a managed workload veth (sl_ifstate role workload, not L3) gets the
 * Ethernet addresses written here and bpf_redirect_peer() into the
 * workload's namespace; any other gets bpf_redirect_neigh() out of the
 * route's interface, which also resolves a missing neighbour. Left to the
 * host stack: egress hooks, packets without an L2 header, fragments, TTL <= 1
 * (the kernel sends time-exceeded), a route back out of the interface the
 * packet came in by, and any lookup failure (blackhole, unreachable,
 * forwarding disabled, a workload neighbour not yet resolved).
 *
 * sl_route_here() is the same routing for a packet the host stack must not
 * see at all (one with a source address of the node's own, which IPv4 input
 * drops as a martian): also back out of the arrival interface, and a
 * resolved route is recorded for the chain end, so later stages still run.
 *
 * Including this header declares the core's pinned interface table
 * (sl_ifstate), so the object must load with pin_root_path = the map pin
 * directory, as every stage does.
 */
#ifndef SLUICE_BPF_FAST_PATH_H
#define SLUICE_BPF_FAST_PATH_H

#include "sluice.h"

#include "fib.h"
#include "ifstate_map.h"
#include "route_cache.h"

enum sl_fast_target {
	SL_FAST_NONE = 0, /* continue the chain (and the host stack) */
	SL_FAST_PEER,     /* L2 written: into a managed workload's veth peer */
	SL_FAST_L2,       /* neighbour resolved, out of the route's interface (L2
			   * written with SL_ROUTE_MUST) */
	SL_FAST_NEIGH,    /* out of the route's interface by bpf_redirect_neigh()
			   * to fib->ipv4_dst / ipv6_dst, which fills in L2 */
};

/* sl_fast_route() flags */
#define SL_ROUTE_MUST (1u << 0) /* the host stack must not see the packet: the
				 * route may lead back out of the arrival
				 * interface, a resolved one gets its L2 written
				 * whatever the interface (for a plain redirect),
				 * an unresolved workload neighbour is left to
				 * bpf_redirect_neigh() */

/* The route cache's key for a lookup in fib (filled in as for the lookup). */
static __always_inline void sl_route_key_of(struct sl_route_key *key, const struct bpf_fib_lookup *fib)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->ifindex = fib->ifindex;
	key->family = fib->family;
	if (fib->family == AF_INET) {
		key->tos = fib->tos;
		key->src[0] = fib->ipv4_src;
		key->dst[0] = fib->ipv4_dst;
	} else {
		__builtin_memcpy(key->src, fib->ipv6_src, 16);
		__builtin_memcpy(key->dst, fib->ipv6_dst, 16);
	}
}

/* Fills in fib's answer (interface, next hop, MACs) from the route cache if
 * it holds a current one for key (layout.h: made under `epoch`, younger than
 * SL_ROUTE_CACHE_MAX_AGE_NS) and the packet fits the route's MTU — the check
 * bpf_fib_lookup() would have made; a packet that does not is left to it
 * (and then to the kernel, which answers "fragmentation needed"). */
static __always_inline int sl_cached_route(struct __sk_buff *skb, const struct sl_route_key *key,
					   __u32 epoch, struct bpf_fib_lookup *fib, int *workload)
{
	struct sl_route_value *r = bpf_map_lookup_elem(&sl_route_cache, key);
	__u32 mtu_len = 0;

	if (!r || r->epoch != epoch || bpf_ktime_get_coarse_ns() - r->looked_up_ns > SL_ROUTE_CACHE_MAX_AGE_NS)
		return 0;
	if (bpf_check_mtu(skb, r->ifindex, &mtu_len, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
		return 0;
	fib->ifindex = r->ifindex;
	if (fib->family == AF_INET)
		fib->ipv4_dst = r->nexthop[0];
	else
		__builtin_memcpy(fib->ipv6_dst, r->nexthop, 16);
	__builtin_memcpy(fib->dmac, r->dmac, 6);
	__builtin_memcpy(fib->smac, r->smac, 6);
	*workload = r->workload;
	return 1;
}

/* Remembers a resolved answer of bpf_fib_lookup() under the scratch's key. */
static __always_inline void sl_cache_route(struct sl_route_scratch *scratch, __u32 epoch,
					   const struct bpf_fib_lookup *fib, int workload)
{
	struct sl_route_value *r = &scratch->value;

	__builtin_memset(r, 0, sizeof(*r));
	r->looked_up_ns = bpf_ktime_get_coarse_ns();
	r->epoch = epoch;
	r->ifindex = fib->ifindex;
	if (fib->family == AF_INET)
		r->nexthop[0] = fib->ipv4_dst;
	else
		__builtin_memcpy(r->nexthop, fib->ipv6_dst, 16);
	__builtin_memcpy(r->dmac, fib->dmac, 6);
	__builtin_memcpy(r->smac, fib->smac, 6);
	r->workload = workload;
	bpf_map_update_elem(&sl_route_cache, &scratch->key, r, BPF_ANY);
}

/* Routes the packet; on a target, decrements the TTL (we forward in place of
 * the kernel) and writes the Ethernet addresses where the redirect needs
 * them (see the targets). On SL_FAST_NONE, *why is the drop reason a stage
 * that must route the packet counts (reasons.def, 18..21), or 0 when the
 * packet is simply the kernel's to route (a hairpin). */
static __always_inline int sl_fast_route(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					 struct bpf_fib_lookup *fib, __u32 flags, __u32 *why)
{
	int must = (flags & SL_ROUTE_MUST) != 0;
	__u32 off = ctx->l3_off;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 ttl;

	*why = SL_R_ROUTE_NO_L2;
	if (off > 64)
		return SL_FAST_NONE;
	fib->ifindex = ctx->ifindex;
	fib->l4_protocol = ctx->ip_proto;
	fib->sport = ctx->sport;
	fib->dport = ctx->dport;
	if (ctx->l3_proto == 0x0800 /* ETH_P_IP */) {
		__u8 *ip = data + off;

		if ((void *)(ip + 20) > data_end)
			return SL_FAST_NONE;
		ttl = ip[8];
		fib->family = AF_INET;
		fib->tos = ip[1];
		fib->ipv4_src = ctx->saddr[0];
		fib->ipv4_dst = ctx->daddr[0];
	} else {
		__u8 *ip = data + off;

		if ((void *)(ip + 40) > data_end)
			return SL_FAST_NONE;
		ttl = ip[7];
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, ctx->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, ctx->daddr, 16);
	}
	*why = SL_R_ROUTE_TTL_EXCEEDED;
	if (ttl <= 1)
		return SL_FAST_NONE;

	__u32 zero = 0;
	/* No cache without either map (then every packet asks the FIB). */
	struct sl_route_scratch *cache = bpf_map_lookup_elem(&sl_route_scratch, &zero);
	__u32 *epoch = bpf_map_lookup_elem(&sl_route_epoch, &zero);
	long rc;
	int target, workload;

	if (cache && epoch)
		sl_route_key_of(&cache->key, fib);
	if (cache && epoch && sl_cached_route(skb, &cache->key, *epoch, fib, &workload))
		rc = BPF_FIB_LKUP_RET_SUCCESS;
	else {
		rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
		struct sl_ifstate *st = bpf_map_lookup_elem(&sl_ifstate, &fib->ifindex);

		workload = st && st->role == SL_ROLE_WORKLOAD && !(st->flags & SL_IF_F_L3);
		if (cache && epoch && rc == BPF_FIB_LKUP_RET_SUCCESS)
			sl_cache_route(cache, *epoch, fib, workload);
	}
	*why = 0;
	if (fib->ifindex == ctx->ifindex && !must) /* hairpin: leave it to the kernel */
		return SL_FAST_NONE;

	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		target = workload ? SL_FAST_PEER : SL_FAST_L2;
	else if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && (!workload || must))
		target = SL_FAST_NEIGH;
	else {
		SL_DEBUG(ctx, "fast path: fib lookup %ld, to the stack", rc);
		*why = SL_R_NO_ROUTE;
		return SL_FAST_NONE;
	}

	if (ctx->l3_proto == 0x0800) {
		__be16 old = bpf_htons((__u16)ttl << 8), new = bpf_htons((__u16)(ttl - 1) << 8);
		__u8 nttl = ttl - 1;

		*why = SL_R_ROUTE_WRITE_FAILED;
		if (bpf_l3_csum_replace(skb, off + 10, old, new, 2) ||
		    bpf_skb_store_bytes(skb, off + 8, &nttl, 1, 0))
			return SL_FAST_NONE;
	} else {
		__u8 nttl = ttl - 1;

		*why = SL_R_ROUTE_WRITE_FAILED;
		if (bpf_skb_store_bytes(skb, off + 7, &nttl, 1, 0))
			return SL_FAST_NONE;
	}
	if (target == SL_FAST_PEER || (target == SL_FAST_L2 && must)) {
		__u8 macs[2 * 6]; /* destination, source: one store */

		__builtin_memcpy(macs, fib->dmac, 6);
		__builtin_memcpy(macs + 6, fib->smac, 6);
		*why = SL_R_ROUTE_WRITE_FAILED;
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return SL_FAST_NONE;
	}
	*why = 0;
	return target;
}

/* Records the redirect out of the route's interface to its next hop, whose
 * L2 header the neighbour table fills in. */
static __always_inline void sl_set_redirect_to_route(struct sl_pkt_ctx *ctx,
						     const struct bpf_fib_lookup *fib)
{
	SL_DEBUG(ctx, "route: out of %d by the neighbour table", fib->ifindex);
	if (fib->family == AF_INET)
		sl_set_redirect_neigh(ctx, fib->ifindex, &fib->ipv4_dst, 0);
	else
		sl_set_redirect_neigh(ctx, fib->ifindex, fib->ipv6_dst, 1);
}

/* The chain end's fast path (the chain protocol, sdk/ABI.md): forwards a
 * packet the stages voted for if it can (returns 1 with the program's
 * verdict in *verdict), else returns 0 and the packet goes on unchanged to
 * the host stack. Into a workload whose egress chain has a stage that sees
 * every packet (SL_CHAIN_F_PEER_EGRESS_WATCHED) it goes through that hook
 * (a redirect to the host side of the veth) instead of straight into the
 * peer. */
static __always_inline int sl_fast_forward(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					   int *verdict)
{
	struct bpf_fib_lookup fib = {};
	__u32 why; /* not a drop: the packet goes on to the host stack */

	if (ctx->hook != SL_HOOK_INGRESS || !(ctx->flags & SL_PKT_F_L2) ||
	    (ctx->flags & SL_PKT_F_FRAGMENT))
		return 0;
	switch (sl_fast_route(skb, ctx, &fib, 0, &why)) {
	case SL_FAST_PEER:
		if (ctx->chain_flags & SL_CHAIN_F_PEER_EGRESS_WATCHED) {
			SL_DEBUG(ctx, "fast path: out of %d (its egress chain watches)", fib.ifindex);
			sl_set_redirect(ctx, fib.ifindex, SL_REDIRECT_EGRESS);
		} else {
			SL_DEBUG(ctx, "fast path: into the peer of %d", fib.ifindex);
			sl_set_redirect(ctx, fib.ifindex, SL_REDIRECT_PEER);
		}
		break;
	case SL_FAST_L2:
	case SL_FAST_NEIGH:
		sl_set_redirect_to_route(ctx, &fib);
		break;
	default:
		return 0;
	}
	*verdict = sl_finish_redirect(skb, ctx);
	return 1;
}

/* Routes a packet the host stack must not see (see the top), from an ingress
 * hook: records the redirect for the chain end and returns 0, or returns the
 * reason the packet cannot be routed (no-route, route-ttl-exceeded,
 * route-no-l2-header, route-helper-write-failed) for the caller to drop it
 * with. The packet is then unchanged, except after a failed write. */
static __always_inline __u32 sl_route_here(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct bpf_fib_lookup fib = {};
	__u32 why = SL_R_ROUTE_NO_L2;

	if (!(ctx->flags & SL_PKT_F_L2))
		return why;
	switch (sl_fast_route(skb, ctx, &fib, SL_ROUTE_MUST, &why)) {
	case SL_FAST_PEER:
	case SL_FAST_L2:
		SL_DEBUG(ctx, "route: out of %d at the chain end", fib.ifindex);
		sl_set_redirect(ctx, fib.ifindex, SL_REDIRECT_EGRESS);
		return 0;
	case SL_FAST_NEIGH:
		sl_set_redirect_to_route(ctx, &fib);
		return 0;
	default:
		return why ? why : SL_R_NO_ROUTE;
	}
}

#endif /* SLUICE_BPF_FAST_PATH_H */
