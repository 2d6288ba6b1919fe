// SPDX-License-Identifier: GPL-2.0-only
/* Per-source token buckets: every IPv4/IPv6 source address may send `rate`
 * packets per second, in bursts of up to `burst`; the excess is dropped with
 * the plugin's reason (plugin-0 unless configured). Sources under an exempted
 * prefix are never limited. Non-IP packets continue untouched. */
#include <sluice/bpf/sluice.h>

#include "ratelimit_layout.h"

/* Set by the control plane before load (see ratelimit.cpp). */
const volatile __u64 rl_rate = 100;         /* tokens per second */
const volatile __u64 rl_burst = 100;        /* bucket size, tokens */
const volatile __u64 rl_fill_ns = 1000000000ull; /* empty -> full: burst*1e9/rate */
const volatile __u32 rl_reason = SL_R_PLUGIN_0;
const volatile __u32 rl_has_exemptions = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RL_MAX_SOURCES);
	__type(key, struct rl_key);
	__type(value, struct rl_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ratelimit_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RL_CTR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ratelimit_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RL_MAX_EXEMPTIONS);
	__type(key, struct rl_exempt_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} ratelimit_exempt SEC(".maps");

static __always_inline void rl_count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&ratelimit_counters, &which);

	if (c)
		*c += 1;
}

SL_STAGE(ratelimit)
{
	struct rl_key key = {};

	if (ctx->l3_proto == 0x0800) {
		key.family = 4;
		key.addr[0] = ctx->saddr[0];
	} else if (ctx->l3_proto == 0x86DD) {
		key.family = 6;
		key.addr[0] = ctx->saddr[0];
		key.addr[1] = ctx->saddr[1];
		key.addr[2] = ctx->saddr[2];
		key.addr[3] = ctx->saddr[3];
	} else {
		return sl_next(skb, ctx);
	}

	if (rl_has_exemptions) {
		struct rl_exempt_key ek = {
			.prefixlen = 32 + (key.family == 4 ? 32 : 128),
			.family = key.family,
		};
		__builtin_memcpy(ek.addr, key.addr, sizeof(ek.addr));
		if (bpf_map_lookup_elem(&ratelimit_exempt, &ek)) {
			rl_count(RL_CTR_EXEMPT);
			SL_DEBUG(ctx, "ratelimit: exempt source");
			return sl_next(skb, ctx);
		}
	}

	__u64 now = bpf_ktime_get_ns();
	__u64 full = rl_burst * RL_TOKEN;
	struct rl_bucket *b = bpf_map_lookup_elem(&ratelimit_buckets, &key);

	if (!b) {
		/* A new source starts with a full bucket, minus this packet. */
		struct rl_bucket fresh = {
			.credit = full - RL_TOKEN,
			.last_ns = now,
			.passed = 1,
		};
		bpf_map_update_elem(&ratelimit_buckets, &key, &fresh, BPF_NOEXIST);
		rl_count(RL_CTR_PASSED);
		return sl_next(skb, ctx);
	}

	/* Refill for the time since the last packet. Races between CPUs on one
	 * source only blur the limit slightly; counters are atomic. */
	__u64 elapsed = now > b->last_ns ? now - b->last_ns : 0;
	__u64 credit = elapsed >= rl_fill_ns ? full : b->credit + elapsed * rl_rate;

	if (credit > full)
		credit = full;
	b->last_ns = now;
	if (credit >= RL_TOKEN) {
		b->credit = credit - RL_TOKEN;
		__sync_fetch_and_add(&b->passed, 1);
		rl_count(RL_CTR_PASSED);
		return sl_next(skb, ctx);
	}
	b->credit = credit;
	__sync_fetch_and_add(&b->dropped, 1);
	rl_count(RL_CTR_DROPPED);
	SL_DEBUG(ctx, "ratelimit: source over %llu/s, dropped", rl_rate);
	return sl_drop(skb, ctx, rl_reason);
}

char LICENSE[] SEC("license") = "GPL";
