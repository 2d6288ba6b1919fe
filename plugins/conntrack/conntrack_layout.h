/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The conntrack plugin's own maps and settings, shared by its BPF objects
 * (conntrack_stage.bpf.c, conntrack_cleaner.bpf.c) and the control plane (ct_*.cpp). The
 * shared table itself is in <sluice/bpf/conntrack.h>. */
#ifndef SLUICE_PLUGIN_CONNTRACK_LAYOUT_H
#define SLUICE_PLUGIN_CONNTRACK_LAYOUT_H

#include <linux/types.h>

#define CT_MAP_STATS "ct_stats" /* PERCPU_ARRAY [1] of struct ct_stats */

/* [plugins.conntrack] table_full */
enum ct_table_full_rule {
	CT_FULL_DROP_NEW = 0,       /* drop the packet that would create an entry */
	CT_FULL_PASS_UNTRACKED = 1, /* let it through untracked (SL_CT_UNTRACKED) */
};

struct ct_stats {
	__u64 created;          /* entries created by the stage */
	__u64 full_dropped;     /* new flows dropped: table full, table_full = "drop-new" */
	__u64 full_passed;      /* new flows passed untracked: table full */
	__u64 cleaned;          /* entries the cleaner removed */
	__u64 reserved[4];
};

/* The cleaner program's context (BPF_PROG_TYPE_SYSCALL: passed in and
 * copied back by BPF_PROG_TEST_RUN). */
struct ct_clean_ctx {
	__u64 now_ns;    /* 0: use bpf_ktime_get_ns(); tests pass a time in the future */
	__u32 scanned;   /* out: entries visited */
	__u32 deleted;   /* out: entries removed */
	__u32 all;       /* in: 1 removes every entry (sluicectl conntrack clean --all) */
	__u32 reserved;
};

#endif /* SLUICE_PLUGIN_CONNTRACK_LAYOUT_H */
