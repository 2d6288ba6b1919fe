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

#include <sluice/bpf/fast_path.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_REGISTRY_SLOTS);
	__type(key, __u32);
	__type(value, struct sl_registry_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_registry SEC(".maps");

/* Installed after the last stage of both lanes of every chain (and alone in
 * an empty chain), so that a failed tail call always means a hole, never
 * "end of chain". It carries out what the stages decided (the chain
 * protocol, sdk/ABI.md): a recorded redirect first, then the fast path for a
 * packet voted forwardable and not vetoed, else the host stack. */
SL_STAGE(sl_chain_end)
{
	int verdict;

	if (ctx->redirect_ifindex)
		return sl_finish_redirect(skb, ctx);
	if ((ctx->votes & (SL_VOTE_FORWARD | SL_VOTE_VETO)) == SL_VOTE_FORWARD &&
	    sl_fast_forward(skb, ctx, &verdict))
		return verdict;
	return sl_finish(skb, ctx, TC_ACT_OK, SL_R_ACCEPTED);
}

char LICENSE[] SEC("license") = "GPL";
