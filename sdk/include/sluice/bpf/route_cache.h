/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The fast path's route cache and its epoch (layout.h: struct sl_route_key,
 * sl_route_value and the rules for when an entry holds). One declaration for
 * every object that uses them: the core creates and pins both and bumps the
 * epoch; stages reuse them by pin name (pin_root_path = the map pin
 * directory, as for sl_ifstate). */
#ifndef SLUICE_BPF_ROUTE_CACHE_H
#define SLUICE_BPF_ROUTE_CACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "layout.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_ROUTE_CACHE_ENTRIES);
	__type(key, struct sl_route_key);
	__type(value, struct sl_route_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_route_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_route_epoch SEC(".maps");

/* Room for a key and a value off the BPF stack, which the stages that use
 * the fast path have little of left (per CPU, per object: not shared). */
struct sl_route_scratch {
	struct sl_route_key key;
	struct sl_route_value value;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_route_scratch);
} sl_route_scratch SEC(".maps");

#endif /* SLUICE_BPF_ROUTE_CACHE_H */
