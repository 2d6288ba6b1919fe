/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP and ICMPv6 errors about NATed flows (conntrack: SL_CT_RELATED): the
 * packet an error quotes and the error's own addresses are translated the
 * way the flow's packets are, so the error reaches whoever sent the packet
 * it is about, in the addresses that one knows (nat_icmp_error(),
 * nat_icmp6_error()).
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_ICMP_ERROR_H
#define SLUICE_PLUGIN_NAT_ICMP_ERROR_H

#include <linux/in.h>
#include <linux/if_ether.h>

#include <sluice/bpf/conntrack.h>
#include <sluice/bpf/csum.h>

#include "nat_select.h"

/* What the stage does with a translated ICMP error: what it does with the
 * packets of the flow it is about. */
enum nat_icmp_next {
	NAT_ICMP_NEXT = 0,    /* on along the chain, for the kernel to forward */
	NAT_ICMP_ROUTE = 1,   /* routed by the stage (a node address as its source,
			       * or a destination the kernel took for itself) */
	NAT_ICMP_REFLECT = 2, /* hairpin: back out of the veth it came in by */
};

/* A translated error goes where the packets of its flow go. */
static __always_inline int nat_icmp_next_of(const struct sl_ct_value *rev, int quote_is_request)
{
	if (rev->flags & SL_CT_F_SVC_SELF)
		return NAT_ICMP_REFLECT;
	if (rev->flags & SL_CT_F_SRC_NAT)
		return NAT_ICMP_ROUTE;
	/* A node port's local backend: the error now comes from the node's
	 * address, a martian to the kernel, as the flow's replies are (IPv4
	 * only: IPv6 flows are never node-addr). */
	if ((rev->flags & SL_CT_F_NODE_ADDR) && quote_is_request)
		return NAT_ICMP_ROUTE;
	return NAT_ICMP_NEXT;
}

/* Rewrites one endpoint (address at addr_off, port at port_off) of the packet
 * an ICMP error quotes, keeping the quote's IP checksum and the ICMP checksum
 * right. */
static __always_inline int nat_icmp_quote_rewrite(struct __sk_buff *skb, __u32 icmp_csum_off,
						  __u32 in_l3, __u32 addr_off, __be32 old_addr,
						  __be32 new_addr, __u32 port_off, __be16 old_port,
						  __be16 new_port)
{
	__be16 old_ipsum, new_ipsum;

	if (bpf_skb_load_bytes(skb, in_l3 + 10, &old_ipsum, 2) ||
	    bpf_l3_csum_replace(skb, in_l3 + 10, old_addr, new_addr, 4) ||
	    bpf_skb_load_bytes(skb, in_l3 + 10, &new_ipsum, 2))
		return -1;
	/* The quote's checksum field changed too: the ICMP checksum covers it. */
	if (sl_csum_store(skb, icmp_csum_off, in_l3 + 10, &old_ipsum, &new_ipsum, 2, 0) ||
	    sl_csum_store(skb, icmp_csum_off, addr_off, &old_addr, &new_addr, 4, 0) ||
	    sl_csum_store(skb, icmp_csum_off, port_off, &old_port, &new_port, 2, 0))
		return -1;
	return 0;
}

/* Rewrites the error's own source (src = 1) or destination address if it is
 * `match` (IPv4 ICMP: no pseudo-header, only the IP checksum changes). */
static __always_inline int nat_icmp_outer_rewrite(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
						  int src, __be32 match, __be32 new_addr)
{
	__be32 *outer = src ? &ctx->saddr[0] : &ctx->daddr[0];

	if (*outer != match)
		return 0;
	if (sl_csum_store_addr4_l3(skb, ctx->l3_off + 10, ctx->l3_off + (src ? 12 : 16), match,
				   new_addr))
		return -1;
	*outer = new_addr;
	return 0;
}

/* An ICMP error (IPv4) about a NATed flow: conntrack found the quoted packet's
 * flow (SL_CT_RELATED). Two cases:
 *  - it quotes client -> backend (an error from the backend or a router on
 *    the way to it, for the client): the quote's destination becomes the
 *    service, and so does the outer source if the backend sent it;
 *  - it quotes service -> client (a reply after reverse NAT; an error from
 *    the client's side, for the service address): the quote's source becomes
 *    the backend, and so does the outer destination.
 * A flow whose source was NATed too (svc-self, src-nat: the backend knows the
 * client as the NAT address) also gets that side translated: the client's
 * own address and port in a quoted request, and the error addressed to the
 * client instead of the NAT address; the NAT address and port in a quoted
 * reply, and the client's outer source replaced by it. The quote's IP
 * checksum and the ICMP checksum are fixed; the quote's L4 checksum is left
 * (receivers do not check it). Returns enum nat_icmp_next, or -1. */
static __always_inline int nat_icmp_error(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u32 icmp_csum_off = ctx->l4_off + 2;
	__u32 in_l3 = ctx->l4_off + 8;
	__u8 ip[20];
	__be16 ports[2];

	if (ctx->l3_proto != ETH_P_IP)
		return NAT_ICMP_NEXT;
	if (bpf_skb_load_bytes(skb, in_l3, ip, sizeof(ip)))
		return NAT_ICMP_NEXT;
	__u32 in_l4 = in_l3 + (ip[0] & 0x0f) * 4u;
	__u8 proto = ip[9];

	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || in_l4 > 0xffff ||
	    bpf_skb_load_bytes(skb, in_l4, ports, sizeof(ports)))
		return NAT_ICMP_NEXT;
	__be32 in_src[4] = {}, in_dst[4] = {};

	__builtin_memcpy(&in_src[0], &ip[12], 4);
	__builtin_memcpy(&in_dst[0], &ip[16], 4);

	struct sl_ct_key key;
	sl_ct_key_fill(&key, 4, proto, in_src, in_dst, ports[0], ports[1]);
	struct sl_ct_value *v = bpf_map_lookup_elem(&sl_conntrack, &key);

	if (!v)
		return NAT_ICMP_NEXT;
	struct sl_ct_key rk;
	struct sl_ct_value *rev;
	int quote_is_request; /* client -> backend, else service -> client */

	if (v->type == SL_CT_TYPE_NAT_REV) {
		rk = key;
		rev = v;
	} else if (v->type == SL_CT_TYPE_NAT_FWD) {
		rk = v->rev_key;
		rev = bpf_map_lookup_elem(&sl_conntrack, &rk);
		if (!rev)
			return NAT_ICMP_NEXT;
	} else {
		return NAT_ICMP_NEXT;
	}
	int opener_b = (rev->flags & SL_CT_F_BA) != 0;
	int snat = (rev->flags & SL_CT_F_SOURCE_NATED) != 0;
	__be32 backend = opener_b ? rk.addr_a[0] : rk.addr_b[0];
	__be16 backend_port = opener_b ? rk.port_a : rk.port_b;
	__be32 nat_src = opener_b ? rk.addr_b[0] : rk.addr_a[0]; /* the client, or its NAT address */
	__be16 nat_sport = opener_b ? rk.port_b : rk.port_a;
	__be32 svc = rev->orig_dst[0], client = snat ? rev->orig_src[0] : nat_src;
	__be16 svc_port = rev->orig_dport, client_port = snat ? rev->orig_sport : nat_sport;

	if (v == rev) {
		quote_is_request = 1;
		if (in_dst[0] != backend || ports[1] != backend_port)
			return NAT_ICMP_NEXT;
	} else {
		quote_is_request = 0;
		if (in_src[0] != svc || ports[0] != svc_port)
			return NAT_ICMP_NEXT;
	}

	if (quote_is_request) {
		/* (NAT source ->) backend becomes (client ->) service. */
		if (nat_icmp_quote_rewrite(skb, icmp_csum_off, in_l3, in_l3 + 16, backend, svc,
					   in_l4 + 2, backend_port, svc_port) ||
		    (snat && nat_icmp_quote_rewrite(skb, icmp_csum_off, in_l3, in_l3 + 12, nat_src,
						    client, in_l4, nat_sport, client_port)) ||
		    nat_icmp_outer_rewrite(skb, ctx, 1, backend, svc) ||
		    (snat && nat_icmp_outer_rewrite(skb, ctx, 0, nat_src, client)))
			return -1;
	} else {
		/* service -> client becomes backend -> (NAT source of the) client. */
		if (nat_icmp_quote_rewrite(skb, icmp_csum_off, in_l3, in_l3 + 12, svc, backend,
					   in_l4, svc_port, backend_port) ||
		    (snat && nat_icmp_quote_rewrite(skb, icmp_csum_off, in_l3, in_l3 + 16, client,
						    nat_src, in_l4 + 2, client_port, nat_sport)) ||
		    nat_icmp_outer_rewrite(skb, ctx, 0, svc, backend) ||
		    (snat && nat_icmp_outer_rewrite(skb, ctx, 1, client, nat_src)))
			return -1;
	}
	SL_DEBUG(ctx, "NAT: ICMP error about a NATed flow translated");
	return nat_icmp_next_of(rev, quote_is_request);
}

/* ICMPv6 (types 1-4) is translated the same way; its checksum also covers
 * the outer addresses (pseudo-header). The quoted IPv6 header must be
 * followed directly by TCP or UDP (no extension headers).
 *
 * Rewrites the error's own source (src = 1) or destination address if it is
 * `match`: part of the ICMPv6 checksum's pseudo-header. */
static __always_inline int nat_icmp6_outer_rewrite(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
						   __u32 icmp_csum_off, int src, const __be32 *match,
						   const __be32 *to)
{
	__be32 *outer = src ? ctx->saddr : ctx->daddr;
	__be32 old[4];

	if (!nat_addr_eq(outer, match))
		return 0;
	__builtin_memcpy(old, outer, 16);
	if (sl_csum_store_addr6(skb, icmp_csum_off, ctx->l3_off + (src ? 8 : 24), old, to,
				BPF_F_PSEUDO_HDR))
		return -1;
	__builtin_memcpy(outer, to, 16);
	return 0;
}

static __always_inline int nat_icmp6_error(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u32 icmp_csum_off = ctx->l4_off + 2;
	__u32 in_l3 = ctx->l4_off + 8;
	__u32 in_l4 = in_l3 + 40;
	__u8 next;
	__be16 ports[2];
	__be32 in_src[4], in_dst[4];

	if (bpf_skb_load_bytes(skb, in_l3 + 6, &next, 1) ||
	    (next != IPPROTO_TCP && next != IPPROTO_UDP) ||
	    bpf_skb_load_bytes(skb, in_l3 + 8, in_src, 16) ||
	    bpf_skb_load_bytes(skb, in_l3 + 24, in_dst, 16) ||
	    bpf_skb_load_bytes(skb, in_l4, ports, sizeof(ports)))
		return NAT_ICMP_NEXT;

	struct sl_ct_key key;
	sl_ct_key_fill(&key, 6, next, in_src, in_dst, ports[0], ports[1]);
	struct sl_ct_value *v = bpf_map_lookup_elem(&sl_conntrack, &key);
	struct sl_ct_value *rev = v;
	struct sl_ct_key rk = key;

	if (!v)
		return NAT_ICMP_NEXT;
	if (v->type == SL_CT_TYPE_NAT_FWD) {
		rk = v->rev_key;
		rev = bpf_map_lookup_elem(&sl_conntrack, &rk);
		if (!rev)
			return NAT_ICMP_NEXT;
	} else if (v->type != SL_CT_TYPE_NAT_REV) {
		return NAT_ICMP_NEXT;
	}
	int opener_b = (rev->flags & SL_CT_F_BA) != 0;
	int snat = (rev->flags & SL_CT_F_SOURCE_NATED) != 0;
	const __be32 *backend = opener_b ? rk.addr_a : rk.addr_b;
	const __be32 *nat_src = opener_b ? rk.addr_b : rk.addr_a;
	const __be32 *svc = rev->orig_dst;
	const __be32 *client = snat ? rev->orig_src : nat_src;
	__be16 backend_port = opener_b ? rk.port_a : rk.port_b;
	__be16 nat_sport = opener_b ? rk.port_b : rk.port_a;
	__be16 svc_port = rev->orig_dport, client_port = snat ? rev->orig_sport : nat_sport;
	int quote_is_request = v->type == SL_CT_TYPE_NAT_REV;

	if (quote_is_request ? !(nat_addr_eq(in_dst, backend) && ports[1] == backend_port)
			     : !(nat_addr_eq(in_src, svc) && ports[0] == svc_port))
		return NAT_ICMP_NEXT;

	/* The quote (no pseudo-header part of the ICMPv6 checksum), then the
	 * error's own addresses (pseudo-header), as nat_icmp_error() does. */
	if (quote_is_request) {
		if (sl_csum_store_addr6(skb, icmp_csum_off, in_l3 + 24, in_dst, svc, 0) ||
		    sl_csum_store(skb, icmp_csum_off, in_l4 + 2, &ports[1], &svc_port, 2, 0) ||
		    (snat && (sl_csum_store_addr6(skb, icmp_csum_off, in_l3 + 8, in_src, client, 0) ||
			      sl_csum_store(skb, icmp_csum_off, in_l4, &ports[0], &client_port, 2, 0))) ||
		    nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 1, backend, svc) ||
		    (snat && nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 0, nat_src, client)))
			return -1;
	} else {
		if (sl_csum_store_addr6(skb, icmp_csum_off, in_l3 + 8, in_src, backend, 0) ||
		    sl_csum_store(skb, icmp_csum_off, in_l4, &ports[0], &backend_port, 2, 0) ||
		    (snat && (sl_csum_store_addr6(skb, icmp_csum_off, in_l3 + 24, in_dst, nat_src, 0) ||
			      sl_csum_store(skb, icmp_csum_off, in_l4 + 2, &ports[1], &nat_sport, 2, 0))) ||
		    nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 0, svc, backend) ||
		    (snat && nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 1, client, nat_src)))
			return -1;
	}
	SL_DEBUG(ctx, "NAT: ICMPv6 error about a NATed flow translated");
	return nat_icmp_next_of(rev, quote_is_request);
}

#endif /* SLUICE_PLUGIN_NAT_ICMP_ERROR_H */
