/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Backend selection, shared by the two BPF objects of the nat plugin: the tc
 * stage (nat_stage.bpf.c: per packet, for workloads and external clients)
 * and the cgroup socket programs (nat_connect.bpf.c: at connect/sendmsg
 * time, for processes on the node itself). Both must pick backends the same
 * way from the same pinned maps, so the maps they read are defined here too
 * (LIBBPF_PIN_BY_NAME: whichever object loads first creates them, the other
 * reuses them).
 *
 * Header-only BPF code: include it from a .bpf.c after <linux/bpf.h> and
 * <bpf/bpf_helpers.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_SELECT_H
#define SLUICE_PLUGIN_NAT_SELECT_H

#include "nat_layout.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_FRONTENDS);
	__type(key, struct nat_fe_key);
	__type(value, struct nat_fe_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_BACKENDS);
	__type(key, struct nat_be_key);
	__type(value, struct nat_be_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NAT_MAX_AFFINITY);
	__type(key, struct nat_aff_key);
	__type(value, struct nat_aff_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_affinity SEC(".maps");

static __always_inline int nat_addr_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* One round of the flow hash: mixes `v` into `h`. */
static __always_inline __u32 nat_mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1u;
	h ^= h >> 16;
	return h;
}

/* The last step of a flow hash, so that inputs differing in a few low bits
 * (consecutive ports, consecutive socket cookies) land on different
 * ordinals. */
static __always_inline __u32 nat_hash_finish(__u32 h)
{
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Picks a backend of the service port `fe` for a new flow; NULL: none may
 * take it.
 *  - eligible: how many ordinals may be chosen, fe->count, or fe->local for
 *    external traffic to an external_traffic_policy = local frontend;
 *  - flow_hash: the same for every packet (or datagram) of one flow and
 *    different between flows, so flows spread and one flow stays put;
 *  - family, client: the affinity key's client (session_affinity =
 *    client_ip). The tc stage gives the packet's source address; the socket
 *    programs give the all-zero address (the node itself, see nat_layout.h).
 * *ordinal is the chosen ordinal; *kept_by_affinity says whether the
 * client's affinity entry chose it. */
static __always_inline struct nat_be_value *
nat_select_backend(const struct nat_fe_value *fe, __u32 eligible, __u32 flow_hash, __u32 family,
		   const __be32 *client, __u32 *ordinal, int *kept_by_affinity)
{
	struct nat_be_key bk = {.id = fe->id};
	struct nat_be_value *be;
	struct nat_aff_key ak = {};
	__u64 now = 0;

	*kept_by_affinity = 0;
	if (eligible == 0 || eligible > fe->count)
		return NULL;

	if (fe->flags & NAT_FE_F_AFFINITY) {
		ak.id = fe->id;
		ak.family = family;
		__builtin_memcpy(ak.client, client, sizeof(ak.client));
		now = bpf_ktime_get_ns();
		struct nat_aff_value *av = bpf_map_lookup_elem(&nat_affinity, &ak);

		if (av && now - av->last_ns < (__u64)fe->affinity_timeout * 1000000000ull &&
		    av->ordinal < eligible) {
			bk.ordinal = av->ordinal;
			be = bpf_map_lookup_elem(&nat_backends, &bk);
			/* Still the same backend at that ordinal? */
			if (be && nat_addr_eq(be->addr, av->backend.addr) &&
			    be->port == av->backend.port) {
				av->last_ns = now;
				*ordinal = bk.ordinal;
				*kept_by_affinity = 1;
				return be;
			}
		}
	}

	bk.ordinal = flow_hash % eligible;
	be = bpf_map_lookup_elem(&nat_backends, &bk);
	if (!be)
		return NULL;
	*ordinal = bk.ordinal;
	if (fe->flags & NAT_FE_F_AFFINITY) {
		struct nat_aff_value nv = {};

		nv.last_ns = now;
		nv.ordinal = bk.ordinal;
		nv.backend = *be;
		bpf_map_update_elem(&nat_affinity, &ak, &nv, BPF_ANY);
	}
	return be;
}

#endif /* SLUICE_PLUGIN_NAT_SELECT_H */
