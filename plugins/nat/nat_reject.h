/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A new flow to a service without a selectable backend. With [plugins.nat]
 * no_backend = "reject" (the default, as Calico) a packet with an Ethernet
 * header (IPv4 without options, IPv6 without extension headers) is turned
 * into an ICMP / ICMPv6 port unreachable and sent back out of the interface
 * it came in by (verdict redirect, counted as no-backend); anything else is
 * dropped (no-backend).
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_REJECT_H
#define SLUICE_PLUGIN_NAT_REJECT_H

#include <sluice/bpf/conntrack.h>
#include <sluice/bpf/icmp.h>

#include "nat_scratch.h"

/* [plugins.nat] no_backend: 1 "reject" (ICMP/ICMPv6 port unreachable to the
 * client), 0 "drop". Set by nat.cpp before load. */
const volatile __u32 nat_no_backend_reject = 1;

static __always_inline int nat_no_backend(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct nat_scratch *scratch;

	/* A retry (after the service got a backend) must be a new flow again,
	 * not an established one that bypasses NAT. */
	sl_ct_forget_new_flow(ctx);
	if (nat_no_backend_reject && (scratch = nat_scratch_get()) &&
	    sl_icmp_unreach(skb, ctx, &scratch->reject, SL_ICMP_PORT_UNREACH) == 0) {
		SL_DEBUG(ctx, "NAT: no backend, ICMP port unreachable sent back");
		/* Counted as no-backend: the packet itself was refused. */
		return sl_finish(skb, ctx, (int)bpf_redirect(ctx->ifindex, 0), SL_R_NO_BACKEND);
	}
	return sl_drop(skb, ctx, SL_R_NO_BACKEND);
}

#endif /* SLUICE_PLUGIN_NAT_REJECT_H */
