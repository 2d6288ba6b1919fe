/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The nat stage's room outside the stack, one per CPU like the packet
 * context: what it builds there is too big to sit next to the rest of a
 * stage's stack (512 bytes in all).
 *
 * Header unit of nat_stage.bpf.c: include it after <sluice/bpf/sluice.h>.
 */
#ifndef SLUICE_PLUGIN_NAT_SCRATCH_H
#define SLUICE_PLUGIN_NAT_SCRATCH_H

#include <sluice/bpf/conntrack.h>
#include <sluice/bpf/icmp.h>

struct nat_scratch {
	struct sl_ct_room entries; /* what sl_ct_create_nat_pair() builds */
	union sl_icmp_room reject; /* the ICMP error nat_no_backend() builds */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_scratch);
} nat_scratch SEC(".maps");

static __always_inline struct nat_scratch *nat_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nat_scratch, &zero);
}

#endif /* SLUICE_PLUGIN_NAT_SCRATCH_H */
