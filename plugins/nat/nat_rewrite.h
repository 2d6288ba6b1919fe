/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The nat stage's rewrite of a packet's address and port (DNAT, reverse
 * NAT, the source NATs): the packet's bytes, its checksums and the parse
 * results in ctx, which later stages read, all changed together.
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_REWRITE_H
#define SLUICE_PLUGIN_NAT_REWRITE_H

#include <linux/in.h>
#include <linux/if_ether.h>

#include "nat_select.h"

static __always_inline __u32 nat_csum_off(const struct sl_pkt_ctx *ctx)
{
	return ctx->l4_off + (ctx->ip_proto == IPPROTO_TCP ? 16 : 6);
}

/* Replaces the source (is_src) or destination address and port of the
 * packet, fixing the IPv4 header checksum and the TCP/UDP checksum
 * (pseudo-header included; SCTP: addresses only). BPF_F_MARK_MANGLED_0 keeps
 * a zero UDP checksum (IPv4: "no checksum") zero and turns a computed zero
 * into 0xffff. Returns 0, or the reason to drop the packet for: a port SCTP
 * cannot change (SL_R_NAT_SCTP_PORT), a helper that failed
 * (SL_R_NAT_WRITE_FAILED; the packet may be half rewritten then). */
static __always_inline __u32 nat_rewrite(struct __sk_buff *skb, struct sl_pkt_ctx *ctx, int is_src,
					 const __be32 *addr, __be16 port)
{
	__u32 csum_off = nat_csum_off(ctx);
	__u64 mangled = ctx->ip_proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be32 *cur_addr = is_src ? ctx->saddr : ctx->daddr;
	__be16 cur_port = is_src ? ctx->sport : ctx->dport;
	__u32 port_off = ctx->l4_off + (is_src ? 0 : 2);
	/* SCTP's CRC32c covers no pseudo-header (addresses change freely) but
	 * does cover the ports, which BPF cannot re-sum incrementally: its
	 * services never change ports (nat.cpp refuses such a service). */
	int sctp = ctx->ip_proto == IPPROTO_SCTP;
	int later = (ctx->flags & SL_PKT_F_LATER_FRAGMENT) || sctp;

	if (sctp && cur_port != port)
		return SL_R_NAT_SCTP_PORT;

	if (ctx->l3_proto == ETH_P_IP) {
		__u32 addr_off = ctx->l3_off + (is_src ? 12 : 16);
		__be32 old = cur_addr[0], new = addr[0];

		if (old != new) {
			if (!later && bpf_l4_csum_replace(skb, csum_off, old, new,
							  BPF_F_PSEUDO_HDR | mangled | sizeof(new)))
				return SL_R_NAT_WRITE_FAILED;
			if (bpf_l3_csum_replace(skb, ctx->l3_off + 10, old, new, sizeof(new)))
				return SL_R_NAT_WRITE_FAILED;
			if (bpf_skb_store_bytes(skb, addr_off, &new, sizeof(new), 0))
				return SL_R_NAT_WRITE_FAILED;
			cur_addr[0] = new;
		}
	} else {
		__u32 addr_off = ctx->l3_off + (is_src ? 8 : 24);
		__be32 old[4], new[4];

		__builtin_memcpy(old, cur_addr, sizeof(old));
		__builtin_memcpy(new, addr, sizeof(new));
		if (!nat_addr_eq(old, new)) {
			/* Not sl_csum_store_addr6(): its own comparison would be a
			 * second branch on the same words for the verifier to walk. */
			__s64 diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);

			if (diff < 0)
				return SL_R_NAT_WRITE_FAILED;
			if (!later && bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff,
							  BPF_F_PSEUDO_HDR | mangled))
				return SL_R_NAT_WRITE_FAILED;
			if (bpf_skb_store_bytes(skb, addr_off, new, sizeof(new), 0))
				return SL_R_NAT_WRITE_FAILED;
			__builtin_memcpy(cur_addr, new, sizeof(new));
		}
	}
	if (!later && cur_port != port) {
		if (bpf_l4_csum_replace(skb, csum_off, cur_port, port, mangled | sizeof(port)))
			return SL_R_NAT_WRITE_FAILED;
		if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0))
			return SL_R_NAT_WRITE_FAILED;
		if (is_src)
			ctx->sport = port;
		else
			ctx->dport = port;
	}
	return 0;
}

#endif /* SLUICE_PLUGIN_NAT_REWRITE_H */
