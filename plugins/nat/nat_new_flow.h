/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A new flow (conntrack says SL_CT_NEW, or conntrack is not in the chain)
 * to a frontend (nat_frontends: service address, port, protocol): it gets a
 * backend, its NAT_FWD / NAT_REV pair in conntrack and its first packet's
 * rewrite (nat_new_flow()).
 *
 * The backend: the client's affinity entry if the service has session
 * affinity and it is still valid, else `hash(flow) % count` over the
 * selectable ordinals (`% local` for external traffic to a frontend with
 * external_traffic_policy = local). The packet is DNATed and the conntrack
 * entry conntrack created for the pre-DNAT tuple becomes a NAT_FWD stub
 * pointing at a NAT_REV entry keyed on the post-DNAT tuple, which carries
 * the state and the service address. No selectable backend: nat_reject.h.
 *
 * Hairpin flows are source-NATed to the hairpin address (nat_hairpin.h);
 * external traffic given a backend on another node is source-NATed to the
 * node's address towards that backend (src-nat; the port changes only if
 * the tuple is taken) and forwarded by the stage itself, both ways
 * (nat_route_here()).
 *
 * Every drop of a new flow forgets the entry conntrack opened for it, so a
 * retry is a new flow again, not an established one that skips NAT.
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_NEW_FLOW_H
#define SLUICE_PLUGIN_NAT_NEW_FLOW_H

#include <linux/in.h>
#include <linux/if_ether.h>

#include <sluice/bpf/conntrack.h>

#include "nat_hairpin.h"
#include "nat_layout.h"
#include "nat_node_route.h"
#include "nat_reject.h"
#include "nat_rewrite.h"
#include "nat_scratch.h"
#include "nat_select.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NAT_MAX_SRC_RANGES);
	__type(key, struct nat_src_range_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_src_ranges SEC(".maps");

/* Source ports a NAT flow may move to when its post-NAT tuple is taken
 * (Linux's default ephemeral range), and how many it tries. */
#define NAT_SNAT_PORT_MIN 32768u
#define NAT_SNAT_PORT_SPAN 28232u
#define NAT_SNAT_TRIES 16

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

/* The conntrack pair of the new flow, for the post-NAT tuple `post` (its
 * source: the client's address, the hairpin address or, with
 * SL_CT_F_SRC_NAT, the node's). The tuple must be no other flow's: the
 * node's address is shared by every client it stands in for, and two
 * services sharing a backend map one client port to one tuple. So the
 * client's own port first, then other ports (SCTP cannot change ports):
 * post->sport says which it took, and a plain DNAT flow that moved gets
 * SL_CT_F_PORT_NAT in *ct_flags. 0, or the reason to drop the packet. */
static __always_inline __u32 nat_ct_create(const struct sl_pkt_ctx *ctx,
					   struct sl_ct_nat_tuple *post, __u32 *ct_flags,
					   int *rev_ba)
{
	struct nat_scratch *scratch = nat_scratch_get();
	int sctp = ctx->ip_proto == IPPROTO_SCTP;
	__be16 client_port = post->sport;
	struct sl_ct_port_search search = {
		.hash = nat_flow_hash(ctx),
		.min = NAT_SNAT_PORT_MIN,
		.span = NAT_SNAT_PORT_SPAN,
		.tries = sctp ? 1 : NAT_SNAT_TRIES,
		/* Source-NATed flows rewrite their source from the entry anyway. */
		.flags_if_moved = (*ct_flags & SL_CT_F_SOURCE_NATED) ? 0 : SL_CT_F_PORT_NAT,
	};

	if (!scratch)
		return SL_R_CT_INSERT_FAILED;
	enum sl_ct_write w =
		sl_ct_create_nat_pair(ctx, post, *ct_flags, search, &scratch->entries, rev_ba);

	if (w == SL_CT_WRITE_OK) {
		if (post->sport != client_port)
			*ct_flags |= search.flags_if_moved;
		return 0;
	}
	if (w == SL_CT_WRITE_TAKEN)
		return sctp ? SL_R_NAT_SCTP_PORT : SL_R_SNAT_PORTS_EXHAUSTED;
	return sl_ct_write_reason(w);
}

static __always_inline int nat_refuse_new_flow(struct __sk_buff *skb, struct sl_pkt_ctx *ctx,
					       __u32 reason)
{
	sl_ct_forget_new_flow(ctx);
	return sl_drop(skb, ctx, reason);
}

/* The frontend the new flow is for, NULL if none. */
static __always_inline struct nat_fe_value *nat_frontend_of(struct __sk_buff *skb,
							    const struct sl_pkt_ctx *ctx,
							    struct nat_fe_key *fk)
{
	struct nat_fe_value *fe;

	fk->family = ctx->l3_proto == ETH_P_IP ? 4 : 6;
	fk->proto = ctx->ip_proto;
	fk->port = ctx->dport;
	__builtin_memcpy(fk->addr, ctx->daddr, sizeof(fk->addr));
	fe = bpf_map_lookup_elem(&nat_frontends, fk);
	if (fe)
		return fe;
	/* A node port: the wildcard frontend of the port, if the packet is for
	 * one of the node's own addresses (whichever interface it came in by:
	 * an uplink, or a workload reaching its node's address). The route
	 * lookup only runs when such a port exists. */
	__builtin_memset(fk->addr, 0, sizeof(fk->addr));
	fe = bpf_map_lookup_elem(&nat_frontends, fk);
	if (fe && !nat_to_node_address(skb, ctx))
		return NULL;
	return fe;
}

static __always_inline int nat_new_flow(struct __sk_buff *skb, struct sl_pkt_ctx *ctx)
{
	struct nat_fe_key fk = {};
	struct nat_fe_value *fe = nat_frontend_of(skb, ctx, &fk);
	__u32 why;

	if (!fe)
		return sl_next(skb, ctx);
	if (fe->flags & NAT_FE_F_SOURCE_RANGES) {
		struct nat_src_range_key rk = {.prefixlen = 32 + (fk.family == 4 ? 32 : 128),
					       .id = fe->id};

		__builtin_memcpy(rk.addr, ctx->saddr, sizeof(rk.addr));
		if (!bpf_map_lookup_elem(&nat_src_ranges, &rk)) {
			SL_DEBUG(ctx, "NAT: client not in service %d's source ranges", fe->id);
			return nat_refuse_new_flow(skb, ctx, SL_R_LB_SOURCE_RANGE);
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
	struct sl_ct_nat_tuple post = {.sport = ctx->sport, .dport = be.port};

	__builtin_memcpy(post.saddr, ctx->saddr, sizeof(post.saddr));
	__builtin_memcpy(post.daddr, be.addr, sizeof(post.daddr));
	if (nat_external_traffic(ctx) && (be.flags & NAT_BE_F_LOCAL))
		ct_flags |= SL_CT_F_EXT_LOCAL;
	if (!nat_external_traffic(ctx) && nat_addr_eq(be.addr, ctx->saddr) &&
	    nat_hairpin_source(ctx, post.saddr))
		ct_flags |= SL_CT_F_SVC_SELF;
	if (nat_external_traffic(ctx) && !(be.flags & NAT_BE_F_LOCAL)) {
		/* An external client sent to a backend elsewhere: the backend's
		 * answer must come back through this node, so the source becomes
		 * the node's own address towards the backend (kube-proxy's
		 * masquerade); its client address is lost, as there. */
		if ((why = nat_node_source(skb, ctx, &be, post.saddr))) {
			SL_DEBUG(ctx, "NAT: no route to the remote backend");
			return nat_refuse_new_flow(skb, ctx, why);
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

	/* Without its NAT_REV entry the replies could not be reverse-NATed. */
	if ((why = nat_ct_create(ctx, &post, &ct_flags, &rev_ba))) {
		SL_DEBUG(ctx, "NAT: cannot create the conntrack entries (reason %d)", why);
		return nat_refuse_new_flow(skb, ctx, why);
	}
	sl_ct_result_now_nat(ctx, ct_flags, rev_ba);
	SL_DEBUG(ctx, "NAT: new flow to service %d -> backend %d", fe->id, ordinal);
	if ((why = nat_rewrite(skb, ctx, 0, be.addr, be.port)))
		return sl_drop(skb, ctx, why);
	if (ct_flags & SL_CT_F_SVC_SELF) {
		SL_DEBUG(ctx, "NAT: hairpin, source NAT and back out");
		if ((why = nat_rewrite(skb, ctx, 1, post.saddr, ctx->sport)))
			return sl_drop(skb, ctx, why);
		return nat_reflect(skb, ctx);
	}
	if (ct_flags & SL_CT_F_SRC_NAT) {
		SL_DEBUG(ctx, "NAT: source NAT to the node for a remote backend");
		if ((why = nat_rewrite(skb, ctx, 1, post.saddr, post.sport)))
			return sl_drop(skb, ctx, why);
		return nat_route_here(skb, ctx);
	}
	if (ct_flags & SL_CT_F_PORT_NAT) {
		SL_DEBUG(ctx, "NAT: post-DNAT tuple taken, source port moved");
		if ((why = nat_rewrite(skb, ctx, 1, post.saddr, post.sport)))
			return sl_drop(skb, ctx, why);
	}
	return sl_next(skb, ctx);
}

#endif /* SLUICE_PLUGIN_NAT_NEW_FLOW_H */
