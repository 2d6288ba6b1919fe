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
 *    No selectable backend: see "No backend" below (nat_new_flow.h).
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
 * No backend: an ICMP / ICMPv6 port unreachable back to the client, or a
 * drop ([plugins.nat] no_backend; nat_reject.h), counted as no-backend.
 *
 * For a new flow the conntrack result word (ctx->scratch[SL_CT_SCRATCH]) is
 * updated to the NAT_REV entry: type NAT_REV, SL_CT_RES_LEG_BA for the
 * post-DNAT key, ext-local in the flags.
 *
 * ICMP and ICMPv6 errors about NATed flows (conntrack: SL_CT_RELATED) are
 * translated: see nat_icmp_error() and nat_icmp6_error().
 *
 * Hairpin (a workload reaching itself through its service) and external
 * clients of a backend on another node are source-NATed as well
 * (nat_hairpin.h, nat_new_flow.h).
 *
 * The parts live in header units next to this file: nat_new_flow.h (a new
 * flow: frontend, backend, conntrack pair, first rewrite), nat_rewrite.h
 * (address and port rewrite), nat_icmp_error.h (ICMP errors about NATed
 * flows), nat_reject.h (no backend), nat_hairpin.h (hairpin: source NAT and
 * reflection), nat_node_route.h (the node's own addresses: node ports, the
 * source NAT to the node, routing what the kernel would drop). This file
 * holds the stage: which of them a packet goes to, and the packets of
 * established flows.
 *
 * Not done here (yet): forwarding node-port traffic to remote backends
 * through a tunnel keeping the client's address (np-fwd, needs encap).
 */
#include <linux/in.h>
#include <linux/if_ether.h>

#include <sluice/bpf/sluice.h>

#include <sluice/bpf/conntrack.h>

#include "nat_hairpin.h"
#include "nat_icmp_error.h"
#include "nat_layout.h"
#include "nat_new_flow.h"
#include "nat_node_route.h"
#include "nat_rewrite.h"

/* Service names, for the control plane and sluicectl: pinned beside the
 * frontends, never read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct nat_service_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_services SEC(".maps");

#define TCP_F_SYN 0x02
#define TCP_F_ACK 0x10

SL_STAGE(nat_stage)
{
	if (ctx->l3_proto != ETH_P_IP && ctx->l3_proto != ETH_P_IPV6)
		return sl_next(skb, ctx);
	if ((ctx->ip_proto == IPPROTO_ICMP || ctx->ip_proto == 58 /* ICMPv6 */) &&
	    sl_ct_result_verdict(ctx->scratch[SL_CT_SCRATCH]) == SL_CT_RELATED) {
		int next = ctx->ip_proto == IPPROTO_ICMP ? nat_icmp_error(skb, ctx)
							 : nat_icmp6_error(skb, ctx);

		if (next < 0)
			return sl_drop(skb, ctx, SL_R_NAT_WRITE_FAILED);
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
	__u32 why;

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
		if ((why = nat_rewrite(skb, ctx, 0, addr, port)))
			return sl_drop(skb, ctx, why);
		if (rev->flags & SL_CT_F_SOURCE_NATED) {
			/* The opener's side of the NAT_REV key is the NAT source. */
			__builtin_memcpy(addr, opener_b ? rk->addr_b : rk->addr_a, sizeof(addr));
			port = opener_b ? rk->port_b : rk->port_a;
			if ((why = nat_rewrite(skb, ctx, 1, addr, port)))
				return sl_drop(skb, ctx, why);
			if (rev->flags & SL_CT_F_SRC_NAT)
				return nat_route_here(skb, ctx);
			if (rev->flags & SL_CT_F_SVC_SELF)
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
		if ((why = nat_rewrite(skb, ctx, 1, addr, port)))
			return sl_drop(skb, ctx, why);
		if (rev->flags & SL_CT_F_SOURCE_NATED) {
			/* Back to the client's own address and port. */
			__builtin_memcpy(addr, rev->orig_src, sizeof(addr));
			if ((why = nat_rewrite(skb, ctx, 0, addr, rev->orig_sport)))
				return sl_drop(skb, ctx, why);
			if (rev->flags & SL_CT_F_SRC_NAT)
				return nat_route_here(skb, ctx);
			if (rev->flags & SL_CT_F_SVC_SELF)
				return nat_reflect(skb, ctx);
		}
		if (from_node_address)
			return nat_route_here(skb, ctx);
		return sl_next(skb, ctx);
	}
	return sl_next(skb, ctx);
}

char LICENSE[] SEC("license") = "GPL";
