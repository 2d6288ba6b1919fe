/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The core's interface table, one declaration for every object that uses
 * it: the core creates and pins it, stages reuse it by pin name (so they
 * must load with pin_root_path = the map pin directory). Keyed by ifindex;
 * the value (struct sl_ifstate, layout.h) tells an interface's role and
 * flags, e.g. whether a route's interface is a managed workload veth. */
#ifndef SLUICE_BPF_IFSTATE_MAP_H
#define SLUICE_BPF_IFSTATE_MAP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "layout.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct sl_ifstate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ifstate SEC(".maps");

#endif /* SLUICE_BPF_IFSTATE_MAP_H */
