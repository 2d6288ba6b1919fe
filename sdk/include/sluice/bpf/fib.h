/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Filling in a bpf_fib_lookup() for a packet: its family, the interface it
 * is on, and the two addresses the lookup is about (the packet's own, or
 * swapped for a reverse-path check, or another destination). No maps: any
 * stage may include it. */
#ifndef SLUICE_BPF_FIB_H
#define SLUICE_BPF_FIB_H

#include "sluice.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* src and dst are 16 bytes, IPv4 in the first word, as in the context. */
static __always_inline void sl_fib_for(struct bpf_fib_lookup *fib, const struct sl_pkt_ctx *ctx,
				       const __be32 *src, const __be32 *dst)
{
	fib->ifindex = ctx->ifindex;
	if (ctx->l3_proto == 0x0800 /* ETH_P_IP */) {
		fib->family = AF_INET;
		fib->ipv4_src = src[0];
		fib->ipv4_dst = dst[0];
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, src, 16);
		__builtin_memcpy(fib->ipv6_dst, dst, 16);
	}
}

#endif /* SLUICE_BPF_FIB_H */
