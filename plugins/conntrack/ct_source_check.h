/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The workload source check (strict reverse-path filtering, as Calico does
 * on workload interfaces): a packet a workload sends — the ingress hook of
 * its veth on the node — must come from an address the node routes back out
 * of that veth. Without it, a workload could forge another's address and
 * make a flow it opened look answered (conntrack would then vote it onto
 * the fast path, past the node's firewall), or reach services as someone
 * else.
 *
 * The route is looked up once per direction of a flow: a leg that entered
 * the node by this interface before (sl_ct_leg.ifindex) was checked then.
 * IPv6 link-local and unspecified sources (neighbour discovery, duplicate
 * address detection) are the link's own and pass.
 */
#ifndef SLUICE_CONNTRACK_CT_SOURCE_CHECK_H
#define SLUICE_CONNTRACK_CT_SOURCE_CHECK_H

#include <sluice/bpf/fib.h>

const volatile __u32 ct_source_check = 1; /* [plugins.conntrack] workload_source_check */

/* Whether this packet is one the check applies to. */
static __always_inline int ct_source_check_applies(const struct sl_pkt_ctx *ctx)
{
	return ct_source_check && ctx->role == SL_ROLE_WORKLOAD && ctx->hook == SL_HOOK_INGRESS;
}

static __always_inline int ct_source_is_link_local(const struct sl_pkt_ctx *ctx)
{
	if (ctx->l3_proto != ETH_P_IPV6)
		return 0;
	if (!(ctx->saddr[0] | ctx->saddr[1] | ctx->saddr[2] | ctx->saddr[3]))
		return 1; /* :: */
	return (bpf_ntohl(ctx->saddr[0]) & 0xffc00000) == 0xfe800000; /* fe80::/10 */
}

/* 1 when the route to the packet's source leads back out of the interface
 * it arrived on. The lookup has no source address: the packet's destination
 * may be multicast (neighbour solicitations, mDNS) or broadcast, which the
 * FIB refuses as a source. */
static __always_inline int ct_source_routed_here(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx)
{
	struct bpf_fib_lookup fib = {};
	const __be32 any[4] = {};
	long rc;

	sl_fib_for(&fib, ctx, any, ctx->saddr);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	return rc == BPF_FIB_LKUP_RET_SUCCESS && fib.ifindex == ctx->ifindex;
}

/* 1 when the packet passes the check; known_ifindex is the interface its
 * direction of the flow entered the node by so far (0: none yet). */
static __always_inline int ct_source_ok(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx,
					__u32 known_ifindex)
{
	if (!ct_source_check_applies(ctx) || known_ifindex == ctx->ifindex)
		return 1;
	if (ct_source_is_link_local(ctx))
		return 1;
	if (ct_source_routed_here(skb, ctx))
		return 1;
	SL_DEBUG(ctx, "CT: source not routed back out of this workload interface: drop");
	return 0;
}

#endif /* SLUICE_CONNTRACK_CT_SOURCE_CHECK_H */
