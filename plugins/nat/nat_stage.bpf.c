/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The nat stage (order 300, ingress of workload and data interfaces):
 * service load balancing on top of the conntrack table.
 *
 *  - A new flow (conntrack says SL_CT_NEW, or conntrack is not in the chain)
 *    to a frontend (nat_frontends: service address, port, protocol) gets a
 *    backend: the client's affinity entry if the service has session
 *    affinity and it is still valid, else `hash(flow) % count` over the
 *    selectable ordinals (`% local` for external traffic to a frontend with
 *    external_traffic_policy = local). The packet is DNATed (destination
 *    address and port, IPv4 header and TCP/UDP checksums; a zero UDP
 *    checksum stays zero) and the conntrack entry conntrack created for the
 *    pre-DNAT tuple becomes a NAT_FWD stub pointing at a NAT_REV entry keyed
 *    on the post-DNAT tuple, which carries the state and the service address.
 *    No selectable backend: drop, reason no-backend.
 *  - Later packets of the flow on the pre-DNAT tuple (conntrack found them
 *    through the NAT_FWD stub) are DNATed to the same backend, whatever the
 *    service maps say now: existing flows survive backend changes.
 *  - Replies from the backend (conntrack: SL_CT_REPLY on a NAT_REV entry)
 *    are reverse-NATed: the source becomes the service address and port.
 *  - Either way, a packet of an established flow that conntrack voted
 *    forwardable then leaves by the core's fast path at the chain end (the
 *    chain protocol, sdk/ABI.md): one conntrack lookup, the rewrite from the
 *    entry, the later stages that see every packet, a cached route and a
 *    redirect; no service lookup, no host stack.
 *    When that address is one of the node's own (a node port, an external
 *    IP the node holds; flow flag SL_CT_F_NODE_ADDR, see nat_route_here())
 *    the stage also routes the reply, since the kernel drops it as a martian.
 *
 * After a rewrite ctx->saddr/daddr/sport/dport describe the packet as it
 * now is, so later stages (encap 400, log 900) see the post-NAT packet.
 *
 * Traffic arrives at this stage on two kinds of interface: from local
 * workloads at their veth's ingress (cali*, role workload: both client
 * requests and backend replies), and from outside at the uplink's ingress
 * (role data: external clients, and replies of remote backends). Node ports
 * (wildcard frontends) match packets for any of the node's own addresses,
 * from either kind of interface: after the exact lookup misses and a
 * wildcard frontend exists for the port, a route lookup tells whether the
 * destination is local (bpf_fib_lookup: "not forwarded"), so traffic to
 * other hosts on that port passes untouched.
 *
 * No backend: with [plugins.nat] no_backend = "reject" (the default, as
 * Calico) a packet with an Ethernet header (IPv4 without options, IPv6
 * without extension headers) is turned into an ICMP / ICMPv6 port
 * unreachable and sent back out of the interface it came in by (verdict
 * redirect, counted as no-backend); anything else is dropped (no-backend).
 *
 * For a new flow the conntrack result word (ctx->scratch[SL_CT_SCRATCH]) is
 * updated to the NAT_REV entry: type NAT_REV, SL_CT_RES_LEG_BA for the
 * post-DNAT key, ext-local in the flags.
 *
 * ICMP and ICMPv6 errors about NATed flows (conntrack: SL_CT_RELATED) are
 * translated: see nat_icmp_error() and nat_icmp6_error().
 *
 * Hairpin (a workload reaching itself through its service): the new flow is
 * also source-NATed to the hairpin address ([plugins.nat] hairpin_snat_*),
 * marked svc-self, and every packet of it, both ways, is sent straight back
 * out of the workload's veth (nat_reflect()).
 *
 * External traffic (from a data interface) given a backend on another node
 * is source-NATed to the node's address towards that backend (src-nat; the
 * port changes only if the tuple is taken) and forwarded by the stage
 * itself, both ways (nat_route_here()).
 *
 * Not done here (yet): forwarding node-port traffic to remote backends
 * through a tunnel keeping the client's address (np-fwd, needs encap).
 */
#include <linux/in.h>
#include <linux/if_ether.h>

#include <sluice/bpf/sluice.h>

#include <sluice/bpf/conntrack.h>
#include <sluice/bpf/fast_path.h>

#include "nat_layout.h"
#include "nat_select.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct nat_service_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NAT_MAX_SRC_RANGES);
	__type(key, struct nat_src_range_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_src_ranges SEC(".maps");

/* Room for the conntrack values nat_ct_create() builds (the stack is
 * too small for both next to the rest). */
struct nat_scratch {
	struct sl_ct_value value;
	__u8 reject[56]; /* the ICMP error nat_reject() builds */
	__u8 reject6[136]; /* pseudo-header (40) + the ICMPv6 error nat_reject6() builds (96) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_scratch);
} nat_scratch SEC(".maps");

#define TCP_F_SYN 0x02
#define TCP_F_ACK 0x10

/* Source ports a source NAT to the node may pick when the client's own is
 * taken (Linux's default ephemeral range), and how many it tries. */
#define NAT_SNAT_PORT_MIN 32768u
#define NAT_SNAT_PORT_SPAN 28232u
#define NAT_SNAT_TRIES 16
#ifndef AF_INET
#define AF_INET 2
#endif

/* [plugins.nat] no_backend: 1 "reject" (ICMP/ICMPv6 port unreachable to the
 * client), 0 "drop". Set by nat.cpp before load. */
const volatile __u32 nat_no_backend_reject = 1;

/* [plugins.nat] hairpin_snat_ipv4 / _ipv6: the source a backend sees when it
 * reaches itself through its service (zero: hairpin not handled). A packet
 * from an address to the same address would be dropped by the workload's
 * kernel as a martian, hence the source NAT, as kube-proxy masquerades it
 * and Cilium uses its service loopback address. Set by nat.cpp before load. */
const volatile __be32 nat_hairpin_v4 = 0;
const volatile __be32 nat_hairpin_v6[4] = {};

static __always_inline struct nat_scratch *nat_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nat_scratch, &zero);
}

/* ---- rewriting --------------------------------------------------------------- */

static __always_inline __u32 nat_csum_off(const struct sl_pkt_ctx *ctx)
{
	return ctx->l4_off + (ctx->ip_proto == IPPROTO_TCP ? 16 : 6);
}

/* Replaces the source (is_src) or destination address and port of the
 * packet, fixing the IPv4 header checksum and the TCP/UDP checksum
 * (pseudo-header included; SCTP: addresses only). BPF_F_MARK_MANGLED_0 keeps a zero UDP checksum
 * (IPv4: "no checksum") zero and turns a computed zero into 0xffff. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, struct sl_pkt_ctx *ctx, int is_src,
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
		return -1;

	if (ctx->l3_proto == ETH_P_IP) {
		__u32 addr_off = ctx->l3_off + (is_src ? 12 : 16);
		__be32 old = cur_addr[0], new = addr[0];

		if (old != new) {
			if (!later && bpf_l4_csum_replace(skb, csum_off, old, new,
							  BPF_F_PSEUDO_HDR | mangled | sizeof(new)))
				return -1;
			if (bpf_l3_csum_replace(skb, ctx->l3_off + 10, old, new, sizeof(new)))
				return -1;
			if (bpf_skb_store_bytes(skb, addr_off, &new, sizeof(new), 0))
				return -1;
			cur_addr[0] = new;
		}
	} else {
		__u32 addr_off = ctx->l3_off + (is_src ? 8 : 24);
		__be32 old[4], new[4];

		__builtin_memcpy(old, cur_addr, sizeof(old));
		__builtin_memcpy(new, addr, sizeof(new));
		if (!nat_addr_eq(old, new)) {
			__s64 diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);

			if (diff < 0)
				return -1;
			if (!later && bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff,
							  BPF_F_PSEUDO_HDR | mangled))
				return -1;
			if (bpf_skb_store_bytes(skb, addr_off, new, sizeof(new), 0))
				return -1;
			__builtin_memcpy(cur_addr, new, sizeof(new));
		}
	}
	if (!later && cur_port != port) {
		if (bpf_l4_csum_replace(skb, csum_off, cur_port, port, mangled | sizeof(port)))
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0))
			return -1;
		if (is_src)
			ctx->sport = port;
		else
			ctx->dport = port;
	}
	return 0;
}

/* ---- replies from the node's own addresses -------------------------------------- */

/* Is the packet's destination one of this node's own addresses (a node port,
 * an external IP the node holds)? The FIB says "not forwarded" for local
 * destinations. */
static __always_inline int nat_to_node_address(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx)
{
	struct bpf_fib_lookup fib = {};

	fib.ifindex = ctx->ifindex;
	if (ctx->l3_proto == ETH_P_IP) {
		fib.family = AF_INET;
		fib.ipv4_src = ctx->saddr[0];
		fib.ipv4_dst = ctx->daddr[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, ctx->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, ctx->daddr, 16);
	}
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

/* ---- backend selection --------------------------------------------------------- */

/* A hash of the flow's tuple: different connections of one client spread
 * over the backends, one connection always hashes the same. */
static __always_inline __u32 nat_flow_hash(const struct sl_pkt_ctx *ctx)
{
	__u32 h = 0x5bd1e995u ^ ctx->ip_proto;
	int i;

	for (i = 0; i < 4; i++)
		h = nat_mix(h, ctx->saddr[i]);
	h = nat_mix(h, ((__u32)ctx->sport << 16) | ctx->dport);
	h = nat_mix(h, ctx->daddr[0] ^ ctx->daddr[3]);
	return nat_hash_finish(h);
}

/* Traffic from outside the node: it arrived on an uplink (or a tunnel). */
static __always_inline int nat_external_traffic(const struct sl_pkt_ctx *ctx)
{
	return ctx->role != SL_ROLE_WORKLOAD;
}

/* Picks a backend for a new flow; NULL: none may take it. */
static __always_inline struct nat_be_value *nat_pick(const struct sl_pkt_ctx *ctx,
						     const struct nat_fe_value *fe, __u32 *ordinal)
{
	__u32 eligible = fe->count;
	int kept_by_affinity = 0;

	if ((fe->flags & NAT_FE_F_EXTERNAL_LOCAL) && nat_external_traffic(ctx))
		eligible = fe->local;
	if ((fe->flags & NAT_FE_F_INTERNAL_LOCAL) && !nat_external_traffic(ctx))
		eligible = fe->local;
	struct nat_be_value *be =
		nat_select_backend(fe, eligible, nat_flow_hash(ctx), ctx->l3_proto == ETH_P_IP ? 4 : 6,
				   ctx->saddr, ordinal, &kept_by_affinity);

	if (be && kept_by_affinity)
		SL_DEBUG(ctx, "NAT: affinity keeps backend %d", *ordinal);
	return be;
}

/* ---- conntrack entries ----------------------------------------------------------- */

/* Turns the flow conntrack just created for the pre-DNAT tuple (if any) into
 * a NAT_FWD stub and creates its NAT_REV entry on the post-NAT tuple
 * (post_saddr: the client's address, the hairpin address or, with
 * SL_CT_F_SRC_NAT, the node's; *post_sport: the source port after NAT, which
 * a source NAT to the node may have to change, see below). */
static __always_inline int nat_ct_create(const struct sl_pkt_ctx *ctx, const struct nat_be_value *be,
					 const __be32 *post_saddr, __be16 *post_sport, __u32 ct_flags,
					 int *rev_ba)
{
	struct sl_ct_key fwd_key, rev_key;
	__u8 family = ctx->l3_proto == ETH_P_IP ? 4 : 6;
	int pre_ba = sl_ct_key_from_ctx(&fwd_key, ctx);
	int post_ba = sl_ct_key_fill(&rev_key, family, ctx->ip_proto, post_saddr, be->addr,
				     *post_sport, be->port);

	*rev_ba = post_ba;
	struct sl_ct_value *normal = bpf_map_lookup_elem(&sl_conntrack, &fwd_key);
	__u64 now = bpf_ktime_get_ns();
	struct nat_scratch *scratch = nat_scratch_get();

	if (!scratch)
		return -1;
	struct sl_ct_value *rev = &scratch->value;

	__builtin_memset(rev, 0, sizeof(*rev));
	rev->created_ns = now;
	rev->last_seen_ns = now;
	if (normal && normal->type == SL_CT_TYPE_NORMAL) {
		rev->created_ns = normal->created_ns;
		rev->flags = normal->flags & ~SL_CT_F_BA;
		rev->legs[post_ba & 1] = normal->legs[pre_ba & 1];
		rev->legs[!post_ba] = normal->legs[!pre_ba];
	} else {
		struct sl_ct_leg *leg = &rev->legs[post_ba & 1];

		leg->packets = 1;
		leg->bytes = ctx->pkt_len;
		leg->ifindex = ctx->ifindex;
		if (ctx->ip_proto == IPPROTO_TCP && (ctx->tcp_flags & TCP_F_SYN))
			leg->flags = SL_CT_LEG_SYN;
	}
	rev->type = SL_CT_TYPE_NAT_REV;
	rev->flags |= ct_flags | (post_ba ? SL_CT_F_BA : 0);
	__builtin_memcpy(rev->orig_dst, ctx->daddr, sizeof(rev->orig_dst));
	__builtin_memcpy(rev->orig_src, ctx->saddr, sizeof(rev->orig_src));
	rev->orig_dport = ctx->dport;
	rev->orig_sport = ctx->sport;
	if (ct_flags & SL_CT_F_SRC_NAT) {
		/* The node's address is shared by every client it stands in
		 * for: the client's own port first, then other ports until the
		 * post-NAT tuple is free (never overwrite another flow). */
		__u32 h = nat_flow_hash(ctx);
		int i, placed = 0;

		for (i = 0; i < NAT_SNAT_TRIES && !placed; i++) {
			if (i) {
				*post_sport = bpf_htons(NAT_SNAT_PORT_MIN +
							(h + i * 7919u) % NAT_SNAT_PORT_SPAN);
				/* Addresses differ, so the orientation cannot change. */
				if (sl_ct_key_fill(&rev_key, family, ctx->ip_proto, post_saddr,
						   be->addr, *post_sport, be->port) != post_ba)
					continue;
			}
			placed = !bpf_map_update_elem(&sl_conntrack, &rev_key, rev, BPF_NOEXIST);
		}
		if (!placed)
			return -1;
	} else if (bpf_map_update_elem(&sl_conntrack, &rev_key, rev, BPF_ANY)) {
		return -1;
	}

	/* The same room, now for the stub. */
	struct sl_ct_value *fwd = rev;
	__u64 created = rev->created_ns;

	__builtin_memset(fwd, 0, sizeof(*fwd));
	fwd->created_ns = created;
	fwd->last_seen_ns = now;
	fwd->type = SL_CT_TYPE_NAT_FWD;
	fwd->flags = (pre_ba ? SL_CT_F_BA : 0) | ct_flags;
	fwd->rev_key = rev_key;
	fwd->nat_sport = *post_sport;
	if (bpf_map_update_elem(&sl_conntrack, &fwd_key, fwd, BPF_ANY)) {
		bpf_map_delete_elem(&sl_conntrack, &rev_key);
		return -1;
	}
	return 0;
}

/* ---- reject ------------------------------------------------------------------------ */

static __always_inline __u16 nat_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Turns the packet (IPv4 without options, with an Ethernet header) into an
 * ICMP port unreachable to its sender, quoting its IP header and first 8
 * bytes of L4, with the MAC addresses swapped, ready to go back out of the
 * interface it came in by. Returns 0, or -1 when the packet cannot be turned
 * (the caller drops it; the packet may then be changed already). */
static __always_inline int nat_reject(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct nat_scratch *scratch = nat_scratch_get();
	__u32 l3 = ctx->l3_off;
	__u8 mac[12], swapped[12];

	if (!scratch || ctx->l3_proto != ETH_P_IP || !(ctx->flags & SL_PKT_F_L2) || l3 != 14)
		return -1;
	__u8 *b = scratch->reject;

	/* outer IP (20) | ICMP (8) | the packet's IP header (20) | its L4 (8) */
	if (bpf_skb_load_bytes(skb, l3, b + 28, 28))
		return -1;
	if ((b[28] & 0x0f) != 5)
		return -1; /* IP options: the quote would not be the header */
	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return -1;
	__builtin_memcpy(swapped, mac + 6, 6);
	__builtin_memcpy(swapped + 6, mac, 6);

	__builtin_memset(b, 0, 28);
	b[0] = 0x45;
	b[3] = 56; /* total length */
	b[8] = 64; /* TTL */
	b[9] = IPPROTO_ICMP;
	__builtin_memcpy(b + 12, b + 28 + 16, 4); /* from: the address the client asked for */
	__builtin_memcpy(b + 16, b + 28 + 12, 4); /* to: the client */
	b[20] = 3; /* destination unreachable */
	b[21] = 3; /* port unreachable */
	__u16 c = nat_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)b, 20, 0));

	__builtin_memcpy(b + 10, &c, 2);
	c = nat_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)(b + 20), 36, 0));
	__builtin_memcpy(b + 22, &c, 2);

	/* Keep IP header + 8 bytes, then open 28 bytes after the first 20. */
	if (bpf_skb_change_tail(skb, 14 + 28, 0))
		return -1;
	if (bpf_skb_adjust_room(skb, 28, BPF_ADJ_ROOM_NET, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 14, b, 56, 0))
		return -1;
	return 0;
}

/* The same for IPv6 (no extension headers): an ICMPv6 destination
 * unreachable, port unreachable (type 1 code 4), quoting the IPv6 header and
 * the first 8 bytes of L4. */
static __always_inline int nat_reject6(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct nat_scratch *scratch = nat_scratch_get();
	__u8 mac[12], swapped[12];

	if (!scratch || ctx->l3_proto != ETH_P_IPV6 || !(ctx->flags & SL_PKT_F_L2) ||
	    ctx->l3_off != 14 || ctx->l4_off != 14 + 40)
		return -1;
	__u8 *ph = scratch->reject6; /* pseudo-header: src, dst, length, next header */
	__u8 *b = scratch->reject6 + 40; /* outer IPv6 (40) | ICMPv6 (8) | quote (48) */

	if (bpf_skb_load_bytes(skb, 14, b + 48, 48))
		return -1;
	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return -1;
	__builtin_memcpy(swapped, mac + 6, 6);
	__builtin_memcpy(swapped + 6, mac, 6);

	__builtin_memset(b, 0, 48);
	b[0] = 0x60;
	b[5] = 56; /* payload length */
	b[6] = 58; /* ICMPv6 */
	b[7] = 64; /* hop limit */
	__builtin_memcpy(b + 8, b + 48 + 24, 16);  /* from: the address the client asked for */
	__builtin_memcpy(b + 24, b + 48 + 8, 16);  /* to: the client */
	b[40] = 1; /* destination unreachable */
	b[41] = 4; /* port unreachable */
	__builtin_memcpy(ph, b + 8, 32);
	__builtin_memset(ph + 32, 0, 8);
	ph[35] = 56;
	ph[39] = 58;
	/* Pseudo-header, then the ICMPv6 message (the outer header in between
	 * is not summed): the first sum seeds the second. */
	__s64 pseudo = bpf_csum_diff(NULL, 0, (__be32 *)ph, 40, 0);

	if (pseudo < 0)
		return -1;
	__u16 c = nat_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)(b + 40), 56, (__u32)pseudo));

	__builtin_memcpy(b + 42, &c, 2);

	if (bpf_skb_change_tail(skb, 14 + 48, 0))
		return -1;
	if (bpf_skb_adjust_room(skb, 48, BPF_ADJ_ROOM_NET, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 14, b, 96, 0))
		return -1;
	return 0;
}

static __always_inline int nat_no_backend(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	/* Forget the flow conntrack just opened for this packet: a retry (after
	 * the service got a backend) must be a new flow again, not an
	 * established one that bypasses NAT. */
	if (sl_ct_result_verdict(ctx->scratch[SL_CT_SCRATCH]) == SL_CT_NEW) {
		struct sl_ct_key key;
		struct sl_ct_value *v;

		sl_ct_key_from_ctx(&key, ctx);
		v = bpf_map_lookup_elem(&sl_conntrack, &key);
		if (v && v->type == SL_CT_TYPE_NORMAL)
			bpf_map_delete_elem(&sl_conntrack, &key);
	}
	if (nat_no_backend_reject &&
	    (ctx->l3_proto == ETH_P_IP ? nat_reject(skb, ctx) : nat_reject6(skb, ctx)) == 0) {
		SL_DEBUG(ctx, "NAT: no backend, ICMP port unreachable sent back");
		/* Counted as no-backend: the packet itself was refused. */
		return sl_finish(skb, ctx, (int)bpf_redirect(ctx->ifindex, 0), SL_R_NO_BACKEND);
	}
	return sl_drop(skb, ctx, SL_R_NO_BACKEND);
}

/* ---- ICMP errors about NATed flows ---------------------------------------------------- */

/* Replaces 4 bytes of the quoted (inner) packet at `off`, fixing the ICMP
 * checksum (IPv4 ICMP: no pseudo-header, so only the bytes count). */
static __always_inline int nat_icmp_store(struct __sk_buff *skb, __u32 icmp_csum_off, __u32 off,
					  const void *old, const void *new, __u32 size)
{
	__be32 o = 0, n = 0;

	__builtin_memcpy(&o, old, size == 4 ? 4 : 2);
	__builtin_memcpy(&n, new, size == 4 ? 4 : 2);
	if (o == n)
		return 0;
	if (bpf_l4_csum_replace(skb, icmp_csum_off, o, n, size))
		return -1;
	return (int)bpf_skb_store_bytes(skb, off, &n, size, 0);
}

/* What the stage does with a translated ICMP error: what it does with the
 * packets of the flow it is about. */
enum nat_icmp_next {
	NAT_ICMP_NEXT = 0,    /* on along the chain, for the kernel to forward */
	NAT_ICMP_ROUTE = 1,   /* routed by the stage (a node address as its source,
			       * or a destination the kernel took for itself) */
	NAT_ICMP_REFLECT = 2, /* hairpin: back out of the veth it came in by */
};

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
	if (nat_icmp_store(skb, icmp_csum_off, in_l3 + 10, &old_ipsum, &new_ipsum, 2) ||
	    nat_icmp_store(skb, icmp_csum_off, addr_off, &old_addr, &new_addr, 4) ||
	    nat_icmp_store(skb, icmp_csum_off, port_off, &old_port, &new_port, 2))
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
	if (bpf_l3_csum_replace(skb, ctx->l3_off + 10, match, new_addr, 4) ||
	    bpf_skb_store_bytes(skb, ctx->l3_off + (src ? 12 : 16), &new_addr, 4, 0))
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
	int snat = (rev->flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)) != 0;
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
	if (rev->flags & SL_CT_F_SVC_SELF)
		return NAT_ICMP_REFLECT;
	if (rev->flags & SL_CT_F_SRC_NAT)
		return NAT_ICMP_ROUTE;
	/* A node port's local backend: the error now comes from the node's
	 * address, a martian to the kernel, as the flow's replies are. */
	if ((rev->flags & SL_CT_F_NODE_ADDR) && quote_is_request)
		return NAT_ICMP_ROUTE;
	return NAT_ICMP_NEXT;
}

/* The same for ICMPv6 (types 1-4), whose checksum also covers the outer
 * addresses (pseudo-header). The quoted IPv6 header must be followed
 * directly by TCP or UDP (no extension headers). */
static __always_inline int nat_icmp6_store(struct __sk_buff *skb, __u32 icmp_csum_off, __u32 off,
					   __be32 *old, const __be32 *new, __u64 pseudo)
{
	if (nat_addr_eq(old, new))
		return 0;
	__s64 diff = bpf_csum_diff(old, 16, (__be32 *)new, 16, 0);

	if (diff < 0 || bpf_l4_csum_replace(skb, icmp_csum_off, 0, (__u32)diff, pseudo))
		return -1;
	return (int)bpf_skb_store_bytes(skb, off, new, 16, 0);
}

/* Rewrites the error's own source (src = 1) or destination address if it is
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
	if (nat_icmp6_store(skb, icmp_csum_off, ctx->l3_off + (src ? 8 : 24), old, to,
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
	int snat = (rev->flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)) != 0;
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
		if (nat_icmp6_store(skb, icmp_csum_off, in_l3 + 24, in_dst, svc, 0) ||
		    nat_icmp_store(skb, icmp_csum_off, in_l4 + 2, &ports[1], &svc_port, 2) ||
		    (snat && (nat_icmp6_store(skb, icmp_csum_off, in_l3 + 8, in_src, client, 0) ||
			      nat_icmp_store(skb, icmp_csum_off, in_l4, &ports[0], &client_port, 2))) ||
		    nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 1, backend, svc) ||
		    (snat && nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 0, nat_src, client)))
			return -1;
	} else {
		if (nat_icmp6_store(skb, icmp_csum_off, in_l3 + 8, in_src, backend, 0) ||
		    nat_icmp_store(skb, icmp_csum_off, in_l4, &ports[0], &backend_port, 2) ||
		    (snat && (nat_icmp6_store(skb, icmp_csum_off, in_l3 + 24, in_dst, nat_src, 0) ||
			      nat_icmp_store(skb, icmp_csum_off, in_l4 + 2, &ports[1], &nat_sport, 2))) ||
		    nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 0, svc, backend) ||
		    (snat && nat_icmp6_outer_rewrite(skb, ctx, icmp_csum_off, 1, client, nat_src)))
			return -1;
	}
	SL_DEBUG(ctx, "NAT: ICMPv6 error about a NATed flow translated");
	if (rev->flags & SL_CT_F_SVC_SELF)
		return NAT_ICMP_REFLECT;
	if (rev->flags & SL_CT_F_SRC_NAT)
		return NAT_ICMP_ROUTE;
	return NAT_ICMP_NEXT;
}

/* ---- hairpin ----------------------------------------------------------------------- */

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
	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)))
		return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
	__builtin_memcpy(swapped, macs + 6, 6);
	__builtin_memcpy(swapped + 6, macs, 6);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
	sl_set_redirect(ctx, ctx->ifindex, SL_REDIRECT_EGRESS);
	return sl_next(skb, ctx);
}

/* ---- source NAT to the node ------------------------------------------------------ */

/* The node's address towards the backend (the route's preferred source),
 * into addr. 0 on success. */
static __always_inline int nat_node_source(struct __sk_buff *skb, const struct sl_pkt_ctx *ctx,
					   const struct nat_be_value *be, __be32 *addr)
{
	struct bpf_fib_lookup fib = {};

	fib.ifindex = ctx->ifindex;
	fib.l4_protocol = ctx->ip_proto;
	if (ctx->l3_proto == ETH_P_IP) {
		fib.family = AF_INET;
		fib.ipv4_dst = be->addr[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_dst, be->addr, 16);
	}
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SRC | BPF_FIB_LOOKUP_SKIP_NEIGH) !=
	    BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	if (ctx->l3_proto == ETH_P_IP) {
		addr[0] = fib.ipv4_src;
		addr[1] = addr[2] = addr[3] = 0;
	} else {
		__builtin_memcpy(addr, fib.ipv6_src, 16);
	}
	return 0;
}

/* ---- the stage -------------------------------------------------------------------- */

static __always_inline int nat_new_flow(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct nat_fe_key fk = {};
	struct nat_fe_value *fe;

	fk.family = ctx->l3_proto == ETH_P_IP ? 4 : 6;
	fk.proto = ctx->ip_proto;
	fk.port = ctx->dport;
	__builtin_memcpy(fk.addr, ctx->daddr, sizeof(fk.addr));
	fe = bpf_map_lookup_elem(&nat_frontends, &fk);
	if (!fe) {
		/* A node port: the wildcard frontend of the port, if the packet is
		 * for one of the node's own addresses (whichever interface it came
		 * in by: an uplink, or a workload reaching its node's address).
		 * The route lookup only runs when such a port exists. */
		__builtin_memset(fk.addr, 0, sizeof(fk.addr));
		fe = bpf_map_lookup_elem(&nat_frontends, &fk);
		if (fe && !nat_to_node_address(skb, ctx))
			fe = NULL;
	}
	if (!fe)
		return sl_next(skb, ctx);
	if (fe->flags & NAT_FE_F_SOURCE_RANGES) {
		struct nat_src_range_key rk = {.prefixlen = 32 + (fk.family == 4 ? 32 : 128),
					       .id = fe->id};

		__builtin_memcpy(rk.addr, ctx->saddr, sizeof(rk.addr));
		if (!bpf_map_lookup_elem(&nat_src_ranges, &rk)) {
			SL_DEBUG(ctx, "NAT: client not in service %d's source ranges", fe->id);
			return sl_drop(skb, ctx, SL_R_LB_SOURCE_RANGE);
		}
	}

	__u32 ordinal = 0;
	struct nat_be_value *found = nat_pick(ctx, fe, &ordinal);

	if (!found) {
		SL_DEBUG(ctx, "NAT: service %d has no backend for this flow", fe->id);
		return nat_no_backend(skb, ctx);
	}
	struct nat_be_value be = *found;
	__u32 ct_flags = 0;
	__be32 post_saddr[4];
	__be16 post_sport = ctx->sport;

	__builtin_memcpy(post_saddr, ctx->saddr, sizeof(post_saddr));
	if (nat_external_traffic(ctx) && (be.flags & NAT_BE_F_LOCAL))
		ct_flags |= SL_CT_F_EXT_LOCAL;
	if (!nat_external_traffic(ctx) && nat_addr_eq(be.addr, ctx->saddr) &&
	    nat_hairpin_source(ctx, post_saddr))
		ct_flags |= SL_CT_F_SVC_SELF;
	if (nat_external_traffic(ctx) && !(be.flags & NAT_BE_F_LOCAL)) {
		/* An external client sent to a backend elsewhere: the backend's
		 * answer must come back through this node, so the source becomes
		 * the node's own address towards the backend (kube-proxy's
		 * masquerade); its client address is lost, as there. */
		if (nat_node_source(skb, ctx, &be, post_saddr)) {
			SL_DEBUG(ctx, "NAT: no route to the remote backend");
			return sl_drop(skb, ctx, SL_R_NO_BACKEND);
		}
		ct_flags |= SL_CT_F_SRC_NAT;
	}
	/* Cluster IPs are never the node's own: only external frontends ask.
	 * IPv4 only: IPv6 input forwards a packet with a local source, so
	 * only IPv4 needs nat_route_here(). */
	if ((fe->flags & NAT_FE_F_EXTERNAL) && ctx->l3_proto == ETH_P_IP &&
	    ((fe->flags & NAT_FE_F_NODE_PORT) || nat_to_node_address(skb, ctx)))
		ct_flags |= SL_CT_F_NODE_ADDR;
	int rev_ba = 0;

	if (nat_ct_create(ctx, &be, post_saddr, &post_sport, ct_flags, &rev_ba)) {
		/* Without its NAT_REV entry the replies could not be reverse-NATed. */
		SL_DEBUG(ctx, "NAT: cannot create the conntrack entries");
		return sl_drop(skb, ctx, SL_R_CT_TABLE_FULL);
	}
	sl_ct_result_now_nat(ctx, ct_flags, rev_ba);
	SL_DEBUG(ctx, "NAT: new flow to service %d -> backend %d", fe->id, ordinal);
	if (nat_rewrite(skb, ctx, 0, be.addr, be.port))
		return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
	if (ct_flags & SL_CT_F_SVC_SELF) {
		SL_DEBUG(ctx, "NAT: hairpin, source NAT and back out");
		if (nat_rewrite(skb, ctx, 1, post_saddr, ctx->sport))
			return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
		return nat_reflect(skb, ctx);
	}
	if (ct_flags & SL_CT_F_SRC_NAT) {
		SL_DEBUG(ctx, "NAT: source NAT to the node for a remote backend");
		if (nat_rewrite(skb, ctx, 1, post_saddr, post_sport))
			return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
		return nat_route_here(skb, ctx);
	}
	return sl_next(skb, ctx);
}


SL_STAGE(nat_stage)
{
	if (ctx->l3_proto != ETH_P_IP && ctx->l3_proto != ETH_P_IPV6)
		return sl_next(skb, ctx);
	if ((ctx->ip_proto == IPPROTO_ICMP || ctx->ip_proto == 58 /* ICMPv6 */) &&
	    sl_ct_result_verdict(ctx->scratch[SL_CT_SCRATCH]) == SL_CT_RELATED) {
		int next = ctx->ip_proto == IPPROTO_ICMP ? nat_icmp_error(skb, ctx)
							 : nat_icmp6_error(skb, ctx);

		if (next < 0)
			return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
		if (next == NAT_ICMP_ROUTE)
			return nat_route_here(skb, ctx);
		if (next == NAT_ICMP_REFLECT)
			return nat_reflect(skb, ctx);
		return sl_next(skb, ctx);
	}
	if (ctx->ip_proto != IPPROTO_TCP && ctx->ip_proto != IPPROTO_UDP &&
	    ctx->ip_proto != IPPROTO_SCTP)
		return sl_next(skb, ctx);
	if (ctx->flags & SL_PKT_F_LATER_FRAGMENT)
		return sl_next(skb, ctx); /* no ports: not NATed (see the README) */

	__u64 r = ctx->scratch[SL_CT_SCRATCH];
	__u32 verdict = sl_ct_result_verdict(r);

	if (verdict == SL_CT_NEW || verdict == SL_CT_NONE)
		return nat_new_flow(skb, ctx);
	if ((verdict != SL_CT_ESTABLISHED && verdict != SL_CT_REPLY) ||
	    sl_ct_result_type(r) != SL_CT_TYPE_NAT_REV)
		return sl_next(skb, ctx);

	__u32 state = sl_ct_result_state(r);

	if (sl_ct_result_has(r, SL_CT_RES_VIA_NAT_FWD) && ctx->ip_proto == IPPROTO_TCP &&
	    (ctx->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) == TCP_F_SYN &&
	    (state == SL_CT_ST_CLOSED || state == SL_CT_ST_RESET)) {
		/* A new connection on the tuple of a finished one (client port
		 * reuse): it gets a backend afresh, not the old one, which may be
		 * terminating or gone. */
		SL_DEBUG(ctx, "NAT: SYN on a closed NAT flow, new backend");
		return nat_new_flow(skb, ctx);
	}
	/* The entry conntrack found, copied for us: no second lookup. */
	struct sl_ct_found *found = sl_ct_found_entry();

	if (!found)
		return sl_next(skb, ctx);
	struct sl_ct_value *rev = &found->value;

	if (sl_ct_result_has(r, SL_CT_RES_VIA_NAT_FWD)) {
		/* Through the stub, SL_CT_ESTABLISHED is the client's packet on the
		 * pre-DNAT tuple: DNAT to the backend its NAT_REV entry names (the
		 * side that did not open). SL_CT_REPLY there is a reply that was
		 * already reverse-NATed (service -> client), not for DNAT. */
		if (verdict != SL_CT_ESTABLISHED)
			return sl_next(skb, ctx);
		const struct sl_ct_key *rk = &found->key;
		int opener_b = (rev->flags & SL_CT_F_BA) != 0;
		__be32 addr[4];
		__be16 port = opener_b ? rk->port_a : rk->port_b;

		__builtin_memcpy(addr, opener_b ? rk->addr_a : rk->addr_b, sizeof(addr));
		if (nat_rewrite(skb, ctx, 0, addr, port))
			return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
		if (rev->flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)) {
			/* The opener's side of the NAT_REV key is the NAT source. */
			__builtin_memcpy(addr, opener_b ? rk->addr_b : rk->addr_a, sizeof(addr));
			port = opener_b ? rk->port_b : rk->port_a;
			if (nat_rewrite(skb, ctx, 1, addr, port))
				return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
			if (rev->flags & SL_CT_F_SRC_NAT)
				return nat_route_here(skb, ctx);
			return nat_reflect(skb, ctx);
		}
		return sl_next(skb, ctx);
	}
	if (verdict == SL_CT_REPLY) {
		/* The backend answering: the source becomes the service again. */
		__be32 addr[4];
		__be16 port = rev->orig_dport;
		int from_node_address = (rev->flags & SL_CT_F_NODE_ADDR) != 0;

		__builtin_memcpy(addr, rev->orig_dst, sizeof(addr));
		SL_DEBUG(ctx, "NAT: reverse NAT of a reply");
		if (nat_rewrite(skb, ctx, 1, addr, port))
			return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
		if (rev->flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)) {
			/* Back to the client's own address and port. */
			__builtin_memcpy(addr, rev->orig_src, sizeof(addr));
			if (nat_rewrite(skb, ctx, 0, addr, rev->orig_sport))
				return sl_drop(skb, ctx, SL_R_MALFORMED_L4_SHORT);
			if (rev->flags & SL_CT_F_SRC_NAT)
				return nat_route_here(skb, ctx);
			return nat_reflect(skb, ctx);
		}
		if (from_node_address)
			return nat_route_here(skb, ctx);
		return sl_next(skb, ctx);
	}
	return sl_next(skb, ctx);
}

char LICENSE[] SEC("license") = "GPL";
