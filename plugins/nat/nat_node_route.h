/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The nat stage and the node's own addresses: whether a packet is for one
 * of them (node ports), which one the node uses towards a backend (source
 * NAT to the node), and routing the packets the kernel would drop because
 * one of them is their source.
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_NODE_ROUTE_H
#define SLUICE_PLUGIN_NAT_NODE_ROUTE_H

#include <linux/if_ether.h>

#include <sluice/bpf/fast_path.h>
#include <sluice/bpf/fib.h>

#include "nat_layout.h"

/* Is the packet's destination one of this node's own addresses (a node port,
 * an external IP the node holds)? The FIB says "not forwarded" for local
 * destinations. */
static __always_inline int nat_to_node_address(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx)
{
	struct bpf_fib_lookup fib = {};

	sl_fib_for(&fib, ctx, ctx->saddr, ctx->daddr);
	return bpf_fib_lookup(skb, &fib, sizeof(fib), 0) == BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* A packet whose source, after its rewrite, is one of the node's own
 * addresses (a reply of a node-addr flow, either direction of a src-nat one):
 * IPv4 input drops it as a martian, so the stage routes it itself, as the
 * kernel would have (also back out of the interface it came in by; later
 * stages still see it). No route, or a TTL about to expire: dropped here,
 * counted, rather than silently by the kernel. */
static __always_inline int nat_route_here(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u32 why = sl_route_here(skb, ctx);

	if (!why)
		return sl_next(skb, ctx);
	SL_DEBUG(ctx, "NAT: cannot route a packet from a node address (reason %d)", why);
	return sl_drop(skb, ctx, why);
}

/* The node's address towards the backend (the route's preferred source),
 * into addr. 0 on success; without a route the flow cannot be sent on:
 * SL_R_NO_ROUTE. */
static __always_inline __u32 nat_node_source(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx,
					     const struct nat_be_value *be, __be32 *addr)
{
	struct bpf_fib_lookup fib = {};
	const __be32 any[4] = {}; /* the route picks the source */

	sl_fib_for(&fib, ctx, any, be->addr);
	fib.l4_protocol = ctx->ip_proto;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SRC | BPF_FIB_LOOKUP_SKIP_NEIGH) !=
	    BPF_FIB_LKUP_RET_SUCCESS)
		return SL_R_NO_ROUTE;
	if (ctx->l3_proto == ETH_P_IP) {
		addr[0] = fib.ipv4_src;
		addr[1] = addr[2] = addr[3] = 0;
	} else {
		__builtin_memcpy(addr, fib.ipv6_src, 16);
	}
	return 0;
}

#endif /* SLUICE_PLUGIN_NAT_NODE_ROUTE_H */
