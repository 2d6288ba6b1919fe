/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Pinned maps of the log plugin, shared by log_stage.bpf.c and log.cpp.
 *
 * The maps are pinned by name next to Sluice's shared maps
 * (<bpf.root>/<bpf.instance>/maps/log_*) and reused across restarts, so
 * their key/value layouts are stable: append fields only into the reserved
 * space, never reorder or resize.
 */
#ifndef SLUICE_PLUGIN_LOG_LAYOUT_H
#define SLUICE_PLUGIN_LOG_LAYOUT_H

#include <linux/types.h>

#define LOG_MAP_RULES "log_rules" /* ARRAY [LOG_MAX_RULES] of struct log_rule */
#define LOG_MAP_STATS "log_stats" /* PERCPU_ARRAY [1] of struct log_stats */

#define LOG_MAX_RULES 8u

/* Filter modes, fixed in the stage's read-only data before it is loaded. */
enum log_mode {
	LOG_MODE_OFF = 0,   /* never emit: the stage is a bare sl_next() */
	LOG_MODE_ALL = 1,   /* emit for every packet */
	LOG_MODE_MATCH = 2, /* emit when any rule of log_rules matches */
};

/* log_rule.fields: what a rule checks. A slot with LOG_F_USED clear is
 * empty and never matches. All checked fields must match. */
#define LOG_F_USED (1u << 0)
#define LOG_F_IFINDEX (1u << 1)
#define LOG_F_L3_PROTO (1u << 2) /* implied by a source/destination prefix */
#define LOG_F_IP_PROTO (1u << 3)
#define LOG_F_SRC (1u << 4)
#define LOG_F_DST (1u << 5)
#define LOG_F_SPORT (1u << 6) /* TCP, UDP and SCTP packets only */
#define LOG_F_DPORT (1u << 7)

struct log_rule {
	__u32 fields;   /* LOG_F_* */
	__u32 ifindex;  /* 0 with LOG_F_IFINDEX: interface missing, never matches */
	__u16 l3_proto; /* ETH_P_IP / ETH_P_IPV6, host order */
	__u8 ip_proto;  /* IPPROTO_* */
	__u8 reserved0;
	__be16 sport;
	__be16 dport;
	__be32 src[4];      /* network, already masked (IPv4 in [0]) */
	__be32 src_mask[4];
	__be32 dst[4];
	__be32 dst_mask[4];
	__u32 reserved[4];
};

struct log_stats {
	__u64 events; /* events written to sl_events */
	__u64 lost;   /* events dropped because sl_events was full */
	__u64 reserved[2];
};

#endif /* SLUICE_PLUGIN_LOG_LAYOUT_H */
