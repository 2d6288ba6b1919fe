/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps of the ratelimit plugin, shared by its BPF stage, its C++ control
 * plane (sluicectl ratelimit dump, metrics) and its tests. Pinned maps are
 * part of the plugin's own ABI: change a layout, change the map's name. */
#ifndef RATELIMIT_LAYOUT_H
#define RATELIMIT_LAYOUT_H

#include <linux/types.h>

/* One token is RL_TOKEN credit units; a source earns `rate` units per ns,
 * i.e. `rate` tokens per second, up to `burst` tokens. */
#define RL_TOKEN 1000000000ull
#define RL_MAX_SOURCES 65536
#define RL_MAX_EXEMPTIONS 256

/* ratelimit_buckets (LRU hash, pinned): key = source address */
struct rl_key {
	__u32 family;    /* 4 or 6 */
	__be32 addr[4];  /* IPv4 in addr[0], the rest zero */
};

struct rl_bucket {
	__u64 credit;   /* tokens * RL_TOKEN at last_ns */
	__u64 last_ns;  /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last packet */
	__u64 passed;   /* packets let through */
	__u64 dropped;  /* packets dropped for lack of tokens */
};

/* ratelimit_counters (per-CPU array, pinned) */
enum rl_counter {
	RL_CTR_PASSED = 0,
	RL_CTR_DROPPED = 1,
	RL_CTR_EXEMPT = 2,  /* sources under an exempted prefix */
	RL_CTR_COUNT = 3,
};

/* ratelimit_exempt (LPM trie, not pinned: filled from the config on load).
 * prefixlen counts the 32 bits of family too. */
struct rl_exempt_key {
	__u32 prefixlen;
	__u32 family;
	__u8 addr[16];
};

#endif /* RATELIMIT_LAYOUT_H */
