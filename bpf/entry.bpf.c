// SPDX-License-Identifier: GPL-2.0-only
/* Per-interface entry programs. One copy is loaded for every managed
 * interface with its constants (role, counter slot, chain bank, fault rules,
 * log prefix) frozen into read-only data, so the fast path needs no lookup to
 * learn who it is. The entry parses the packet once into the per-CPU context
 * and tail-calls the first stage of its (role, hook) chain. */
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in6.h>
#include <sluice/bpf/sluice.h>

const volatile __u32 sl_cfg_slot = 0;
const volatile __u32 sl_cfg_role = SL_ROLE_WORKLOAD;
const volatile __u32 sl_cfg_l3_device = 0; /* no Ethernet header (tun, wireguard) */
const volatile __u32 sl_cfg_malformed_rule = SL_FAULT_DROP;
const volatile __u32 sl_cfg_missed_rule = SL_FAULT_DROP;
const volatile __u32 sl_cfg_jump_base[SL_HOOK_COUNT] = {};
/* The chain protocol (sdk/ABI.md): each hook's lane-1 base, the lane-1
 * position of the stage at each lane-0 position, and SL_CHAIN_F_*. */
const volatile __u32 sl_cfg_est_jump_base[SL_HOOK_COUNT] = {};
const volatile __u64 sl_cfg_est_pos[SL_HOOK_COUNT][SL_MAX_STAGES / 8] = {};
const volatile __u32 sl_cfg_chain_flags[SL_HOOK_COUNT] = {};
const volatile __u32 sl_cfg_last_judge_pos[SL_HOOK_COUNT] = {0xff, 0xff};
const volatile char sl_cfg_log_prefix[SL_HOOK_COUNT][SL_LOG_PREFIX_LEN] = {};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NON_IP,
	PARSE_L2_SHORT,
	PARSE_L3_SHORT,
	PARSE_IHL,
	PARSE_IP_LEN,
	PARSE_L4_SHORT,
	PARSE_VERSION,
	PARSE_EXT_CHAIN, /* more IPv6 extension headers than we walk */
};

/* Makes [0, len) of the packet readable through skb->data, pulling
 * non-linear data in when needed. Fails when the packet is shorter. */
static __always_inline int ensure_linear(struct __sk_buff *skb, __u32 len)
{
	if ((long)skb->data + len <= (long)skb->data_end)
		return 0;
	if (skb->len < len)
		return -1;
	if (bpf_skb_pull_data(skb, len))
		return -1;
	return (long)skb->data + len <= (long)skb->data_end ? 0 : -1;
}

static __always_inline int parse_l4(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
				    __u32 l3_end)
{
	__u32 off = ctx->l4_off;
	__u32 need;

	switch (ctx->ip_proto) {
	case IPPROTO_TCP:
		need = sizeof(struct tcphdr);
		break;
	case IPPROTO_UDP:
		need = sizeof(struct udphdr);
		break;
	case IPPROTO_SCTP:
		need = 12; /* common header: ports, verification tag, CRC32c */
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		need = 8;
		break;
	default:
		return PARSE_OK; /* no ports to extract */
	}
	if (off + need > l3_end)
		return PARSE_L4_SHORT;

	/* The first 14 bytes of the L4 header cover what we extract (TCP flags
	 * sit in byte 13). Direct access for the usual small offsets; a helper
	 * copy beyond, so long header chains are parsed, not given up on. */
	__u8 l4[14] = {};
	__u32 copy = ctx->ip_proto == IPPROTO_TCP ? 14 : 8;

	if (off <= 255 && !ensure_linear(skb, off + copy)) {
		void *data = (void *)(long)skb->data;
		void *data_end = (void *)(long)skb->data_end;
		__u8 *src = data + off;

		if ((void *)(src + 14) <= data_end)
			__builtin_memcpy(l4, src, 14);
		else if ((void *)(src + 8) <= data_end && copy == 8)
			__builtin_memcpy(l4, src, 8);
		else
			return PARSE_L4_SHORT;
	} else if (copy == 14 ? bpf_skb_load_bytes(skb, off, l4, 14) :
				bpf_skb_load_bytes(skb, off, l4, 8)) {
		return PARSE_L4_SHORT;
	}

	if (ctx->ip_proto == IPPROTO_TCP) {
		__u32 doff = l4[12] >> 4;

		if (doff < 5 || off + doff * 4 > l3_end)
			return PARSE_L4_SHORT;
		ctx->sport = *(__be16 *)&l4[0];
		ctx->dport = *(__be16 *)&l4[2];
		ctx->tcp_flags = l4[13];
	} else if (ctx->ip_proto == IPPROTO_UDP || ctx->ip_proto == IPPROTO_SCTP) {
		ctx->sport = *(__be16 *)&l4[0];
		ctx->dport = *(__be16 *)&l4[2];
	} else {
		ctx->dport = bpf_htons(((__u16)l4[0] << 8) | l4[1]);
		ctx->sport = *(__be16 *)&l4[4]; /* echo identifier */
	}
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u32 l3 = ctx->l3_off;

	if (ensure_linear(skb, l3 + sizeof(struct iphdr)))
		return PARSE_L3_SHORT;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + l3;

	if ((void *)(ip + 1) > data_end)
		return PARSE_L3_SHORT;
	if (ip->version != 4)
		return PARSE_VERSION;
	if (ip->ihl < 5)
		return PARSE_IHL;

	__u32 hdr_len = ip->ihl * 4u;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	__u32 avail = skb->len - l3;

	/* tot_len 0 is legal only for BIG TCP super-packets above 64 KiB. */
	if (tot_len == 0 && avail > 0xffff)
		tot_len = avail;
	if (tot_len < hdr_len || tot_len > avail)
		return PARSE_IP_LEN;

	ctx->ip_proto = ip->protocol;
	ctx->saddr[0] = ip->saddr;
	ctx->daddr[0] = ip->daddr;
	ctx->l4_off = l3 + hdr_len;

	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x3fff) {
		ctx->flags |= SL_PKT_F_FRAGMENT;
		if (frag & 0x1fff) {
			ctx->flags |= SL_PKT_F_LATER_FRAGMENT;
			return PARSE_OK;
		}
	}
	return parse_l4(skb, ctx, l3 + tot_len);
}

#define MAX_IPV6_EXT_HEADERS 6

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	__u32 l3 = ctx->l3_off;

	if (ensure_linear(skb, l3 + sizeof(struct ipv6hdr)))
		return PARSE_L3_SHORT;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + l3;

	if ((void *)(ip6 + 1) > data_end)
		return PARSE_L3_SHORT;
	if (ip6->version != 6)
		return PARSE_VERSION;

	__u32 payload = bpf_ntohs(ip6->payload_len);
	__u32 avail = skb->len - l3;

	if (payload == 0 && avail > 0xffff + sizeof(struct ipv6hdr))
		payload = avail - sizeof(struct ipv6hdr); /* jumbogram / BIG TCP */
	if (payload + sizeof(struct ipv6hdr) > avail)
		return PARSE_IP_LEN;

	__builtin_memcpy(ctx->saddr, &ip6->saddr, 16);
	__builtin_memcpy(ctx->daddr, &ip6->daddr, 16);

	__u32 l3_end = l3 + sizeof(struct ipv6hdr) + payload;
	__u32 off = l3 + sizeof(struct ipv6hdr);
	__u8 next = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS && next != IPPROTO_FRAGMENT)
			break;
		__u8 ext[8];

		if (off + 8 > l3_end || bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
			return PARSE_L4_SHORT;
		if (next == IPPROTO_FRAGMENT) {
			__u16 frag = ((__u16)ext[2] << 8) | ext[3];

			ctx->flags |= SL_PKT_F_FRAGMENT;
			if (frag & 0xfff8) {
				ctx->flags |= SL_PKT_F_LATER_FRAGMENT;
				ctx->ip_proto = ext[0];
				ctx->l4_off = off + 8;
				return PARSE_OK;
			}
			off += 8;
		} else {
			off += (ext[1] + 1u) * 8;
		}
		next = ext[0];
	}
	if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
	    next == IPPROTO_FRAGMENT)
		return PARSE_EXT_CHAIN; /* never hand stages a packet whose ports they cannot see */
	ctx->ip_proto = next;
	ctx->l4_off = off;
	return parse_l4(skb, ctx, l3_end);
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					__u16 *l3_proto)
{
	__u16 proto;

	if (sl_cfg_l3_device) {
		proto = bpf_ntohs(skb->protocol);
		ctx->l3_off = 0;
	} else {
		if (ensure_linear(skb, ETH_HLEN))
			return PARSE_L2_SHORT;
		void *data = (void *)(long)skb->data;
		void *data_end = (void *)(long)skb->data_end;
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > data_end)
			return PARSE_L2_SHORT;
		proto = bpf_ntohs(eth->h_proto);
		ctx->flags |= SL_PKT_F_L2;
		ctx->l3_off = ETH_HLEN;
	}
	*l3_proto = proto;
	if (proto == ETH_P_IP) {
		ctx->l3_proto = ETH_P_IP;
		return parse_ipv4(skb, ctx);
	}
	if (proto == ETH_P_IPV6) {
		ctx->l3_proto = ETH_P_IPV6;
		return parse_ipv6(skb, ctx);
	}
	return PARSE_NON_IP;
}

/* What a workload may send or receive besides IP: ARP. Nothing the chain
 * cannot parse may pass a workload's interface — a VLAN tag (single or
 * 802.1ad + 802.1Q; the kernel has moved the outer one into the metadata
 * before tc runs) or another ethertype would carry packets past conntrack,
 * policy and NAT into the node's stack or, through a VLAN device there, to
 * other hosts. Other roles pass non-IP frames to the kernel: an uplink
 * carries the node's own VLANs, LLDP and the like (docs/design.md). */
static __always_inline int refused_on_workload(struct __sk_buff *skb, int parsed, __u16 l3_proto)
{
	if (sl_cfg_role != SL_ROLE_WORKLOAD)
		return 0;
	return parsed == PARSE_NON_IP && (skb->vlan_present || l3_proto != ETH_P_ARP);
}

/* The pass rule covers only damage the kernel's IP layer drops by itself.
 * What we could not parse past the IP header (a truncated L4 header, an
 * over-long IPv6 extension chain) would be forwarded by the kernel with
 * ports no stage has seen, so it is always dropped. */
static __always_inline int always_dropped(int result)
{
	return result == PARSE_L4_SHORT || result == PARSE_EXT_CHAIN;
}

static __always_inline __u32 malformed_reason(int result, int pass)
{
	switch (result) {
	case PARSE_L2_SHORT:
		return pass ? SL_R_PASSED_MALFORMED_L2_SHORT : SL_R_MALFORMED_L2_SHORT;
	case PARSE_L3_SHORT:
		return pass ? SL_R_PASSED_MALFORMED_L3_SHORT : SL_R_MALFORMED_L3_SHORT;
	case PARSE_IHL:
		return pass ? SL_R_PASSED_MALFORMED_IHL : SL_R_MALFORMED_IHL;
	case PARSE_IP_LEN:
		return pass ? SL_R_PASSED_MALFORMED_IP_LEN : SL_R_MALFORMED_IP_LEN;
	case PARSE_L4_SHORT:
		return SL_R_MALFORMED_L4_SHORT;
	case PARSE_EXT_CHAIN:
		return SL_R_MALFORMED_EXT_CHAIN;
	default:
		return pass ? SL_R_PASSED_MALFORMED_VERSION : SL_R_MALFORMED_VERSION;
	}
}

static __always_inline int sl_entry(struct __sk_buff *skb, __u32 hook)
{
	struct sl_pkt_ctx *ctx = sl_pkt_ctx_get();
	__u32 zero = 0;

	if (!ctx)
		return TC_ACT_SHOT; /* cannot happen: a 1-entry per-CPU array */
	/* The log prefix is written, and read, only when logging. */
	__builtin_memset(ctx, 0, __builtin_offsetof(struct sl_pkt_ctx, log_prefix));
	ctx->ifindex = skb->ifindex;
	ctx->hook = hook;
	ctx->role = sl_cfg_role;
	ctx->counter_base = sl_counter_base(sl_cfg_slot, hook);
	ctx->jump_base = sl_cfg_jump_base[hook];
	ctx->est_jump_base = sl_cfg_est_jump_base[hook];
	ctx->chain_flags = sl_cfg_chain_flags[hook];
	ctx->last_judge_pos = sl_cfg_last_judge_pos[hook];
	/* Two words, not sixteen bytes: one store each. */
	__u64 *est_pos = (__u64 *)ctx->est_pos;
	est_pos[0] = sl_cfg_est_pos[hook][0];
	est_pos[1] = sl_cfg_est_pos[hook][1];
	ctx->missed_rule = sl_cfg_missed_rule;
	ctx->pkt_len = skb->len;
	ctx->mark = skb->mark;

	struct sl_settings *settings = bpf_map_lookup_elem(&sl_settings, &zero);
	if (settings && settings->log_level) {
		ctx->log_level = settings->log_level;
		ctx->start_ns = bpf_ktime_get_ns();
		/* Byte by byte: memcpy would drop the volatile and let the
		 * compiler fold the (zero) initializer instead of the loaded value. */
#pragma unroll
		for (int i = 0; i < SL_LOG_PREFIX_LEN; i++)
			ctx->log_prefix[i] = sl_cfg_log_prefix[hook][i];
		SL_DEBUG(ctx, "New packet at ifindex=%d; len=%d mark=%x", skb->ifindex,
			 skb->len, skb->mark);
	}

	__u16 l3_proto = 0;
	/* A tagged frame belongs to the VLAN device above this interface (whose
	 * chain, if Sluice manages it, sees it untagged), not to this chain: it
	 * is not parsed. */
	int parsed = skb->vlan_present ? PARSE_NON_IP : parse_packet(skb, ctx, &l3_proto);
	if (refused_on_workload(skb, parsed, l3_proto)) {
		SL_DEBUG(ctx, "Not IP or ARP on a workload (ethertype %x, tagged %d): drop",
			 l3_proto, skb->vlan_present);
		return sl_finish(skb, ctx, TC_ACT_SHOT, SL_R_NON_IP_ON_WORKLOAD);
	}
	if (parsed == PARSE_NON_IP) {
		SL_DEBUG(ctx, "Not IP (ethertype/protocol %x): pass", bpf_ntohs(skb->protocol));
		return sl_finish(skb, ctx, TC_ACT_OK, SL_R_NON_IP);
	}
	if (parsed != PARSE_OK) {
		int pass = sl_cfg_malformed_rule == SL_FAULT_PASS && !always_dropped(parsed);

		SL_DEBUG(ctx, "Malformed packet (parse error %d)", parsed);
		return sl_finish(skb, ctx, pass ? TC_ACT_OK : TC_ACT_SHOT,
				 malformed_reason(parsed, pass));
	}
	if (ctx->log_level >= SL_LOG_DEBUG) {
		if (ctx->l3_proto == ETH_P_IP)
			SL_DEBUG(ctx, "IP proto=%d s=%pI4 d=%pI4", ctx->ip_proto, ctx->saddr,
				 ctx->daddr);
		else
			SL_DEBUG(ctx, "IPv6 proto=%d s=%pI6 d=%pI6", ctx->ip_proto, ctx->saddr,
				 ctx->daddr);
		if (ctx->ip_proto == IPPROTO_ICMP || ctx->ip_proto == IPPROTO_ICMPV6)
			SL_DEBUG(ctx, "ICMP type=%d code=%d id=%d", bpf_ntohs(ctx->dport) >> 8,
				 bpf_ntohs(ctx->dport) & 0xff, bpf_ntohs(ctx->sport));
		else
			SL_DEBUG(ctx, "ports: s=%d d=%d tcp flags=%x", bpf_ntohs(ctx->sport),
				 bpf_ntohs(ctx->dport), ctx->tcp_flags);
	}

	/* The key comes straight from frozen read-only data (hook is a constant
	 * in each of the two programs), so the verifier sees a constant key and
	 * the JIT patches a direct jump into the chain's first slot instead of an
	 * indirect one (a retpoline on Spectre-v2-mitigated CPUs: ~15 ns per
	 * packet, measured by sluice-bench). Updates of the slot re-patch it. */
	bpf_tail_call(skb, &sl_jump, sl_cfg_jump_base[hook]);
	return sl_missed_tail_call(skb, ctx);
}

SEC("tc")
int sl_entry_ingress(struct __sk_buff *skb)
{
	return sl_entry(skb, SL_HOOK_INGRESS);
}

SEC("tc")
int sl_entry_egress(struct __sk_buff *skb)
{
	return sl_entry(skb, SL_HOOK_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
