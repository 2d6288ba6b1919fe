// SPDX-License-Identifier: GPL-2.0-only
/* Pieces of the entry program's fixed cost, one program each, so sluice-bench
 * can say where the time goes (all return TC_ACT_OK). Opened with the bench
 * instance's pin root, so sl_state/sl_counters/sl_settings are the real ones. */
#include <sluice/bpf/sluice.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} bench_jump SEC(".maps");

/* Per-CPU context lookup only. */
SEC("tc")
int m_ctx_lookup(struct __sk_buff *skb)
{
	struct sl_pkt_ctx *ctx = sl_pkt_ctx_get();

	if (!ctx)
		return TC_ACT_SHOT;
	ctx->pkt_len = skb->len;
	return TC_ACT_OK;
}

/* Lookup + zeroing the whole context, as the entry does. */
SEC("tc")
int m_ctx_memset(struct __sk_buff *skb)
{
	struct sl_pkt_ctx *ctx = sl_pkt_ctx_get();

	if (!ctx)
		return TC_ACT_SHOT;
	__builtin_memset(ctx, 0, sizeof(*ctx));
	ctx->pkt_len = skb->len;
	return TC_ACT_OK;
}

/* The sl_settings lookup (log level) the entry does for every packet. */
SEC("tc")
int m_settings(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct sl_settings *s = bpf_map_lookup_elem(&sl_settings, &zero);

	(void)skb;
	return s && s->log_level ? TC_ACT_SHOT : TC_ACT_OK;
}

/* bpf_ktime_get_ns(), which the entry calls only when logging is on. */
SEC("tc")
int m_ktime(struct __sk_buff *skb)
{
	(void)skb;
	return bpf_ktime_get_ns() == 1 ? TC_ACT_SHOT : TC_ACT_OK;
}

/* Context lookup + one per-CPU counter update (sl_count). */
SEC("tc")
int m_count(struct __sk_buff *skb)
{
	struct sl_pkt_ctx *ctx = sl_pkt_ctx_get();

	if (!ctx)
		return TC_ACT_SHOT;
	ctx->pkt_len = skb->len;
	ctx->counter_base = 0;
	sl_count(ctx, SL_R_ACCEPTED);
	return TC_ACT_OK;
}

/* One tail call into m_end. */
SEC("tc")
int m_tail(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &bench_jump, 0);
	return TC_ACT_SHOT;
}

/* One tail call whose key the verifier cannot prove constant (read from
 * the context, as sl_next and the entry do): no direct-jump patching, the
 * JIT emits an indirect jump (a retpoline where Spectre v2 mitigations use
 * them). */
SEC("tc")
int m_tail_dyn(struct __sk_buff *skb)
{
	struct sl_pkt_ctx *ctx = sl_pkt_ctx_get();

	if (!ctx)
		return TC_ACT_SHOT;
	ctx->stage_pos = 0;
	bpf_tail_call(skb, &bench_jump, *(volatile __u8 *)&ctx->stage_pos);
	return TC_ACT_SHOT;
}

SEC("tc")
int m_end(struct __sk_buff *skb)
{
	(void)skb;
	return TC_ACT_OK;
}

/* Ring buffer submit cost by wakeup flag: a private 1 MiB ring (as big as
 * sl_events), 128-byte records, drained by sluice-bench before each run. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1u << 20);
} bench_ring SEC(".maps");

static __always_inline int rb_emit(__u64 flags)
{
	__u64 *rec = bpf_ringbuf_reserve(&bench_ring, 120, 0);

	if (!rec)
		return TC_ACT_SHOT;
	rec[0] = 1;
	bpf_ringbuf_submit(rec, flags);
	return TC_ACT_OK;
}

SEC("tc")
int m_rb_default(struct __sk_buff *skb)
{
	(void)skb;
	return rb_emit(0);
}

SEC("tc")
int m_rb_no_wakeup(struct __sk_buff *skb)
{
	(void)skb;
	return rb_emit(BPF_RB_NO_WAKEUP);
}

SEC("tc")
int m_rb_force_wakeup(struct __sk_buff *skb)
{
	(void)skb;
	return rb_emit(BPF_RB_FORCE_WAKEUP);
}

char LICENSE[] SEC("license") = "GPL";
