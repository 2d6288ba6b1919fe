/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Internet checksums for stages that rewrite packets (nat's address and port
 * rewrites, the ICMP errors of <sluice/bpf/icmp.h>, a tunnel's outer header).
 *
 * The kernel's helpers do the arithmetic: bpf_csum_diff() sums, and
 * bpf_l3/l4_csum_replace() update a checksum in place for a change of 2, 4
 * or (as a precomputed difference) any number of bytes. What they leave to
 * the caller, and what is easy to get subtly wrong, is here: folding a sum
 * into the 16-bit field, and writing new bytes together with the update of
 * the checksum that covers them, so that the two never disagree.
 *
 * Header-only BPF code: include it after <sluice/bpf/sluice.h>. All helpers
 * return 0, or -1 when a kernel helper refused (nothing was written then, or
 * the checksum was updated and the bytes were not: drop the packet, as
 * SL_R_NAT_WRITE_FAILED or the caller's own "write failed" reason).
 */
#ifndef SLUICE_BPF_CSUM_H
#define SLUICE_BPF_CSUM_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* A sum from bpf_csum_diff() (32 bits of ones' complement partial sums)
 * folded into a checksum field's value: carries added back twice (the first
 * fold can carry once more), then complemented. */
static __always_inline __u16 sl_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The checksum of `len` bytes (a multiple of 4) at `buf`, seeded with `seed`
 * (e.g. a pseudo-header's sum), ready to store. */
static __always_inline __u16 sl_csum_of(void *buf, __u32 len, __u32 seed)
{
	return sl_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)buf, len, seed));
}

/* Replaces `size` (2 or 4) bytes at `off`, old -> new, and updates the L4
 * checksum at csum_off to match (flags: BPF_F_PSEUDO_HDR when the bytes are
 * part of the pseudo-header, BPF_F_MARK_MANGLED_0 for UDP; 0 for an ICMP
 * checksum, which covers only its message). Equal values write nothing. */
static __always_inline int sl_csum_store(struct __sk_buff *skb, __u32 csum_off, __u32 off,
					 const void *old, const void *new, __u32 size, __u64 flags)
{
	__be32 o = 0, n = 0;

	__builtin_memcpy(&o, old, size == 4 ? 4 : 2);
	__builtin_memcpy(&n, new, size == 4 ? 4 : 2);
	if (o == n)
		return 0;
	if (bpf_l4_csum_replace(skb, csum_off, o, n, flags | (size == 4 ? 4 : 2)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &n, size == 4 ? 4 : 2, 0) ? -1 : 0;
}

/* The same for a 16-byte IPv6 address: the difference of the two is summed
 * first (the helpers replace at most 4 bytes at a time). */
static __always_inline int sl_csum_store_addr6(struct __sk_buff *skb, __u32 csum_off, __u32 off,
					       const __be32 *old, const __be32 *new, __u64 flags)
{
	if (old[0] == new[0] && old[1] == new[1] && old[2] == new[2] && old[3] == new[3])
		return 0;
	__s64 diff = bpf_csum_diff((__be32 *)old, 16, (__be32 *)new, 16, 0);

	if (diff < 0 || bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff, flags))
		return -1;
	return bpf_skb_store_bytes(skb, off, new, 16, 0) ? -1 : 0;
}

/* Replaces an IPv4 address at `off` (the IP header's own, or a quoted one)
 * and updates the IPv4 header checksum at ip_csum_off (the header holding
 * it). */
static __always_inline int sl_csum_store_addr4_l3(struct __sk_buff *skb, __u32 ip_csum_off,
						  __u32 off, __be32 old, __be32 new)
{
	if (old == new)
		return 0;
	if (bpf_l3_csum_replace(skb, ip_csum_off, old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0) ? -1 : 0;
}

#endif /* SLUICE_BPF_CSUM_H */
