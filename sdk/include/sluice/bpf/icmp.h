/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Turning a packet into an ICMP / ICMPv6 destination unreachable to its
 * sender, for a stage that refuses a packet politely: nat with no backend
 * (port unreachable, as Calico and kube-proxy answer), a policy rule that
 * rejects (administratively prohibited), encap with no tunnel to a node.
 *
 * The packet is rewritten in place into the error (MAC addresses swapped,
 * from the address the sender asked for, to the sender, quoting its IP
 * header and the first bytes of its L4 header: 8, or for TCP its 20-byte
 * header), ready to leave by the interface it came in by:
 *
 *     if (sl_icmp_unreach(skb, ctx, room, SL_ICMP_PORT_UNREACH) == 0)
 *             return sl_finish(skb, ctx, (int)bpf_redirect(ctx->ifindex, 0), reason);
 *     return sl_drop(skb, ctx, reason);
 *
 * Counted under the reason the packet was refused for: the error is the
 * refusal's form, not a packet of its own. Afterwards ctx no longer
 * describes the packet, so the stage sends it itself rather than continue
 * the chain.
 *
 * Only simple packets can be turned (an Ethernet header; IPv4 without
 * options, IPv6 without extension headers): for anything else the helpers
 * return -1 and the caller drops. -1 may also come after the packet was
 * changed; it must be dropped then.
 *
 * The error is built in `room`, a union sl_icmp_room outside the stack (it
 * is larger than what a stage can spare there): a slot of the stage's own
 * per-CPU array.
 *
 * Header-only BPF code: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_BPF_ICMP_H
#define SLUICE_BPF_ICMP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "layout.h"

/* Destination unreachable codes: IPv4 type 3, IPv6 type 1. */
enum sl_unreach {
	SL_ICMP_HOST_UNREACH,   /* IPv4 code 1, IPv6 code 3 (address unreachable) */
	SL_ICMP_PORT_UNREACH,   /* IPv4 code 3, IPv6 code 4 */
	SL_ICMP_ADMIN_PROHIBIT, /* IPv4 code 13, IPv6 code 1 */
};

/* The error's own headers, then the quote: the IP header and 8 bytes of L4,
 * or for TCP the whole 20-byte header. Why TCP's is longer: a segment from a
 * local stack crosses a veth with its checksum still to be filled in
 * (CHECKSUM_PARTIAL), and the kernel refuses to cut such a packet before the
 * end of its TCP checksum field (bpf_skb_change_tail: -EINVAL) — the error
 * would never reach a real client. UDP's checksum field ends within 8 bytes. */
#define SL_ICMP4_HEADERS 28 /* IP (20) | ICMP (8) */
#define SL_ICMP6_HEADERS 48 /* IPv6 (40) | ICMPv6 (8) */
#define SL_ICMP_QUOTE_L4 8
#define SL_ICMP_QUOTE_L4_TCP 20
#define SL_ICMP_ERROR4_MAX (SL_ICMP4_HEADERS + 20 + SL_ICMP_QUOTE_L4_TCP)
#define SL_ICMP_ERROR6_MAX (SL_ICMP6_HEADERS + 40 + SL_ICMP_QUOTE_L4_TCP)

union sl_icmp_room {
	__u8 v4[SL_ICMP_ERROR4_MAX];
	/* The pseudo-header the ICMPv6 checksum covers (40), then the error. */
	__u8 v6[40 + SL_ICMP_ERROR6_MAX];
};

/* How much of the packet's L4 header the error quotes. */
static __always_inline __u32 sl_icmp_quote_l4(const struct sl_pkt_ctx *ctx)
{
	return ctx->ip_proto == 6 /* TCP */ ? SL_ICMP_QUOTE_L4_TCP : SL_ICMP_QUOTE_L4;
}

/* The sender's MAC addresses swapped, for the error to go back to it. */
static __always_inline int sl_icmp_swapped_macs(struct __sk_buff *skb, __u8 *swapped)
{
	__u8 mac[12];

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return -1;
	__builtin_memcpy(swapped, mac + 6, 6);
	__builtin_memcpy(swapped + 6, mac, 6);
	return 0;
}

/* Replaces the packet by the error built at `err` (its headers, then the
 * quote). The packet is cut to the quote, room for the headers is opened
 * after its IP header, and the error is written over both. */
static __always_inline int sl_icmp_replace_packet(struct __sk_buff *skb, const __u8 *swapped,
						  const __u8 *err, __u32 headers, __u32 quote)
{
	if (bpf_skb_change_tail(skb, 14 + quote, 0))
		return -1;
	if (bpf_skb_adjust_room(skb, headers, BPF_ADJ_ROOM_NET, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, swapped, 12, 0))
		return -1;
	if (headers + quote > sizeof(union sl_icmp_room))
		return -1;
	if (bpf_skb_store_bytes(skb, 14, err, headers + quote, 0))
		return -1;
	return 0;
}

/* IPv4: an ICMP destination unreachable (type 3). */
static __always_inline int sl_icmp4_unreach(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx,
					    union sl_icmp_room *room, enum sl_unreach why)
{
	__u32 l3 = ctx->l3_off;
	__u8 swapped[12];

	if (!room || ctx->l3_proto != 0x0800 || !(ctx->flags & SL_PKT_F_L2) || l3 != 14)
		return -1;
	__u8 *b = room->v4;
	__u32 quote = 20 + sl_icmp_quote_l4(ctx);

	if (bpf_skb_load_bytes(skb, l3, b + SL_ICMP4_HEADERS, quote))
		return -1;
	if ((b[28] & 0x0f) != 5)
		return -1; /* IP options: the quote would not be the header */
	if (sl_icmp_swapped_macs(skb, swapped))
		return -1;

	__builtin_memset(b, 0, SL_ICMP4_HEADERS);
	b[0] = 0x45;
	b[3] = SL_ICMP4_HEADERS + quote; /* total length */
	b[8] = 64;                       /* TTL */
	b[9] = 1;                        /* ICMP */
	__builtin_memcpy(b + 12, b + 28 + 16, 4); /* from: the address the sender asked for */
	__builtin_memcpy(b + 16, b + 28 + 12, 4); /* to: the sender */
	b[20] = 3;                                /* destination unreachable */
	b[21] = why == SL_ICMP_HOST_UNREACH ? 1 : why == SL_ICMP_ADMIN_PROHIBIT ? 13 : 3;
	__u16 c = sl_csum_of(b, 20, 0);

	__builtin_memcpy(b + 10, &c, 2);
	c = sl_csum_of(b + 20, 8 + quote, 0);
	__builtin_memcpy(b + 22, &c, 2);

	return sl_icmp_replace_packet(skb, swapped, b, SL_ICMP4_HEADERS, quote);
}

/* IPv6: an ICMPv6 destination unreachable (type 1). */
static __always_inline int sl_icmp6_unreach(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx,
					    union sl_icmp_room *room, enum sl_unreach why)
{
	__u8 swapped[12];

	if (!room || ctx->l3_proto != 0x86DD || !(ctx->flags & SL_PKT_F_L2) || ctx->l3_off != 14 ||
	    ctx->l4_off != 14 + 40)
		return -1;
	__u8 *ph = room->v6;     /* pseudo-header: src, dst, length, next header */
	__u8 *b = room->v6 + 40; /* outer IPv6 (40) | ICMPv6 (8) | quote */
	__u32 quote = 40 + sl_icmp_quote_l4(ctx);

	if (bpf_skb_load_bytes(skb, 14, b + SL_ICMP6_HEADERS, quote))
		return -1;
	if (sl_icmp_swapped_macs(skb, swapped))
		return -1;

	__builtin_memset(b, 0, 48);
	b[0] = 0x60;
	b[5] = 8 + quote; /* payload length */
	b[6] = 58;                      /* ICMPv6 */
	b[7] = 64;                      /* hop limit */
	__builtin_memcpy(b + 8, b + 48 + 24, 16); /* from: the address the sender asked for */
	__builtin_memcpy(b + 24, b + 48 + 8, 16); /* to: the sender */
	b[40] = 1;                                /* destination unreachable */
	b[41] = why == SL_ICMP_HOST_UNREACH ? 3 : why == SL_ICMP_ADMIN_PROHIBIT ? 1 : 4;
	__builtin_memcpy(ph, b + 8, 32);
	__builtin_memset(ph + 32, 0, 8);
	ph[35] = 8 + quote;
	ph[39] = 58;
	/* Pseudo-header, then the ICMPv6 message (the outer header in between
	 * is not summed): the first sum seeds the second. */
	__s64 pseudo = bpf_csum_diff(NULL, 0, (__be32 *)ph, 40, 0);

	if (pseudo < 0)
		return -1;
	__u16 c = sl_csum_of(b + 40, 8 + quote, (__u32)pseudo);

	__builtin_memcpy(b + 42, &c, 2);

	return sl_icmp_replace_packet(skb, swapped, b, SL_ICMP6_HEADERS, quote);
}

/* Either family, by the packet's. */
static __always_inline int sl_icmp_unreach(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx,
					   union sl_icmp_room *room, enum sl_unreach why)
{
	return ctx->l3_proto == 0x0800 ? sl_icmp4_unreach(skb, ctx, room, why)
				       : sl_icmp6_unreach(skb, ctx, room, why);
}

#endif /* SLUICE_BPF_ICMP_H */
