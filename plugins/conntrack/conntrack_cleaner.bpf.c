/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The conntrack cleaner: one pass over sl_conntrack that deletes the entries
 * whose last_seen + timeout(state) lies in the past. It is a
 * BPF_PROG_TYPE_SYSCALL program run with BPF_PROG_TEST_RUN (by the plugin's
 * thread every clean_interval seconds, and by `sluicectl conntrack clean`).
 *
 * The expiry check reads the entry in place, in the kernel, right before the
 * delete, so a packet that refreshed an entry since the last pass keeps it:
 * there is no userspace snapshot that could be stale (as a dump-then-delete
 * sweep would have). The remaining window is the few instructions between
 * the check and the delete, on an entry idle for its whole timeout.
 *
 * A NAT_FWD stub goes with its NAT_REV entry: it is deleted when that entry
 * is gone or expired.
 *
 * This object includes only <sluice/bpf/conntrack.h> (not sluice.h), so
 * sluicectl can load it alone to run a pass while sluiced is down.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <sluice/bpf/conntrack.h>

struct bpf_map;

#include "conntrack_layout.h"

/* Seconds, indexed by enum sl_ct_timeout; set by conntrack.cpp before load. */
const volatile __u32 ct_timeouts[SL_CT_TO_COUNT] = {20, 3600, 30, 40, 60, 5, 600};

struct ct_clean_state {
	__u64 now;
	__u32 scanned;
	__u32 deleted;
	__u32 all;
};

static __always_inline int ct_expired(const struct sl_ct_key *key, const struct sl_ct_value *v,
				      __u64 now)
{
	__u32 which = sl_ct_timeout_for(key->proto, v);
	__u64 timeout;

	if (which >= SL_CT_TO_COUNT)
		which = SL_CT_TO_OTHER;
	timeout = (__u64)ct_timeouts[which] * 1000000000ull;
	return v->last_seen_ns + timeout < now;
}

static long ct_clean_one(struct bpf_map *map, struct sl_ct_key *key, struct sl_ct_value *v,
			 struct ct_clean_state *state)
{
	state->scanned++;
	if (!state->all) {
		if (v->type == SL_CT_TYPE_NAT_FWD) {
			struct sl_ct_key rev = v->rev_key;
			struct sl_ct_value *r = bpf_map_lookup_elem(map, &rev);

			if (r && !ct_expired(&rev, r, state->now))
				return 0;
		} else if (!ct_expired(key, v, state->now)) {
			return 0;
		}
	}
	if (bpf_map_delete_elem(map, key) == 0)
		state->deleted++;
	return 0;
}

SEC("syscall")
int conntrack_clean(struct ct_clean_ctx *ctx)
{
	struct ct_clean_state state = {};

	state.now = ctx->now_ns ? ctx->now_ns : bpf_ktime_get_ns();
	state.all = ctx->all;
	bpf_for_each_map_elem(&sl_conntrack, ct_clean_one, &state, 0);
	ctx->scanned = state.scanned;
	ctx->deleted = state.deleted;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
