// SPDX-License-Identifier: GPL-2.0-only
/* The core object: loaded once per daemon start. It owns (creates and pins)
 * every shared map and provides the program that ends each chain. */
#include <sluice/bpf/events.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_meta SEC(".maps");

#include <sluice/bpf/ifstate_map.h>
#include <sluice/bpf/route_cache.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_REGISTRY_SLOTS);
	__type(key, __u32);
	__type(value, struct sl_registry_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_registry SEC(".maps");

/* Installed after the last stage of every chain (and alone in an empty chain),
 * so that a failed tail call always means a hole, never "end of chain". */
SL_STAGE(sl_chain_end)
{
	if (ctx->redirect_ifindex)
		return sl_redirect(skb, ctx, ctx->redirect_ifindex, ctx->redirect_flags);
	return sl_accept(skb, ctx);
}

char LICENSE[] SEC("license") = "GPL";
