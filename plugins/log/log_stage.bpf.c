/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The log stage: writes a packet event to sl_events (streamed by
 * `sluicectl monitor`) for every packet that passes the configured filter,
 * then continues the chain. It never drops.
 *
 * The filter mode and the number of rules are read-only data set by log.cpp
 * before loading, so the verifier removes what a mode does not use: with
 * filter = "off" the program is sl_next() and nothing else.
 */
#include <linux/in.h>

#include <sluice/bpf/sluice.h>
#include <sluice/bpf/events.h>

#include "log_layout.h"

const volatile __u32 log_mode = LOG_MODE_OFF;    /* enum log_mode */
const volatile __u32 log_rule_count = 0;         /* rules in log_rules, <= LOG_MAX_RULES */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LOG_MAX_RULES);
	__type(key, __u32);
	__type(value, struct log_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} log_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct log_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} log_stats SEC(".maps");

static __always_inline int log_prefix_matches(const __be32 *addr, const __be32 *net,
					      const __be32 *mask)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		if ((addr[i] & mask[i]) != net[i])
			return 0;
	return 1;
}

static __always_inline int log_has_ports(const struct sl_pkt_ctx *ctx)
{
	if (ctx->flags & SL_PKT_F_LATER_FRAGMENT)
		return 0;
	return ctx->ip_proto == IPPROTO_TCP || ctx->ip_proto == IPPROTO_UDP ||
	       ctx->ip_proto == IPPROTO_SCTP;
}

static __always_inline int log_rule_matches(const struct log_rule *rule,
					    const struct sl_pkt_ctx *ctx)
{
	__u32 fields = rule->fields;

	if (!(fields & LOG_F_USED))
		return 0;
	if ((fields & LOG_F_IFINDEX) && rule->ifindex != ctx->ifindex)
		return 0;
	if ((fields & LOG_F_L3_PROTO) && rule->l3_proto != ctx->l3_proto)
		return 0;
	if ((fields & LOG_F_IP_PROTO) && rule->ip_proto != ctx->ip_proto)
		return 0;
	if (fields & (LOG_F_SPORT | LOG_F_DPORT)) {
		if (!log_has_ports(ctx))
			return 0;
		if ((fields & LOG_F_SPORT) && rule->sport != ctx->sport)
			return 0;
		if ((fields & LOG_F_DPORT) && rule->dport != ctx->dport)
			return 0;
	}
	if ((fields & LOG_F_SRC) && !log_prefix_matches(ctx->saddr, rule->src, rule->src_mask))
		return 0;
	if ((fields & LOG_F_DST) && !log_prefix_matches(ctx->daddr, rule->dst, rule->dst_mask))
		return 0;
	return 1;
}

static __always_inline int log_filter_matches(const struct sl_pkt_ctx *ctx)
{
	for (__u32 i = 0; i < LOG_MAX_RULES; i++) {
		if (i >= log_rule_count)
			break;
		__u32 key = i;
		const struct log_rule *rule = bpf_map_lookup_elem(&log_rules, &key);

		if (rule && log_rule_matches(rule, ctx))
			return 1;
	}
	return 0;
}

static __always_inline void log_emit(struct sl_pkt_ctx *ctx)
{
	__u32 zero = 0;
	int lost = sl_emit_packet_event(ctx, "log", 3);
	struct log_stats *stats = bpf_map_lookup_elem(&log_stats, &zero);

	if (stats) {
		if (lost)
			stats->lost++;
		else
			stats->events++;
	}
	if (lost)
		SL_DEBUG(ctx, "log: sl_events is full, event lost");
}

SL_STAGE(log_packet)
{
	if (log_mode == LOG_MODE_OFF)
		return sl_next(skb, ctx);
	if (log_mode == LOG_MODE_ALL || log_filter_matches(ctx))
		log_emit(ctx);
	return sl_next(skb, ctx);
}

char LICENSE[] SEC("license") = "GPL";
