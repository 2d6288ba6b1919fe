/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Hairpin: a workload reaching itself through its service. The new flow is
 * source-NATed to the hairpin address too ([plugins.nat] hairpin_snat_*),
 * marked svc-self, and every packet of it, both ways, is sent straight back
 * out of the workload's veth (nat_reflect()).
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_HAIRPIN_H
#define SLUICE_PLUGIN_NAT_HAIRPIN_H

#include <linux/if_ether.h>

/* [plugins.nat] hairpin_snat_ipv4 / _ipv6: the source a backend sees when it
 * reaches itself through its service (zero: hairpin not handled). A packet
 * from an address to the same address would be dropped by the workload's
 * kernel as a martian, hence the source NAT, as kube-proxy masquerades it
 * and Cilium uses its service loopback address. Set by nat.cpp before load. */
const volatile __be32 nat_hairpin_v4 = 0;
const volatile __be32 nat_hairpin_v6[4] = {};

/* The hairpin source for the packet's family into addr; 0 when none is set. */
static __always_inline int nat_hairpin_source(const struct sl_pkt_ctx *ctx, __be32 *addr)
{
	if (ctx->l3_proto == ETH_P_IP) {
		if (!nat_hairpin_v4)
			return 0;
		addr[0] = nat_hairpin_v4;
		addr[1] = addr[2] = addr[3] = 0;
		return 1;
	}
	/* Word by word: a memcpy from volatile read-only data loses the volatile. */
	addr[0] = nat_hairpin_v6[0];
	addr[1] = nat_hairpin_v6[1];
	addr[2] = nat_hairpin_v6[2];
	addr[3] = nat_hairpin_v6[3];
	return addr[0] | addr[1] | addr[2] | addr[3] ? 1 : 0;
}

/* Sends a hairpin packet straight back to the workload it came from, with
 * the Ethernet addresses swapped: not through the host's routing, which
 * would see a packet from the hairpin address arrive on a workload veth
 * (reverse-path filtering) and route it back out of the same interface. */
static __always_inline int nat_reflect(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u8 macs[12], swapped[12];

	if (!(ctx->flags & SL_PKT_F_L2))
		return sl_next(skb, ctx);
	/* The parse saw the Ethernet header: only a helper can fail here. */
	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)))
		return sl_drop(skb, ctx, SL_R_NAT_WRITE_FAILED);
	__builtin_memcpy(swapped, macs + 6, 6);
	__builtin_memcpy(swapped + 6, macs, 6);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return sl_drop(skb, ctx, SL_R_NAT_WRITE_FAILED);
	sl_set_redirect(ctx, ctx->ifindex, SL_REDIRECT_EGRESS);
	return sl_next(skb, ctx);
}

#endif /* SLUICE_PLUGIN_NAT_HAIRPIN_H */
