/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet events for `sluicectl monitor`: a shared ring buffer any stage may
 * write to. Include only where events are emitted. */
#ifndef SLUICE_BPF_EVENTS_H
#define SLUICE_BPF_EVENTS_H

#include "sluice.h"

/* Backlog above which a writer wakes the reader (see sl_emit_packet_event). */
#define SL_EVENTS_WAKEUP_BYTES (64u * 1024u)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SL_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_events SEC(".maps");

/* Writes one event describing the packet as the context sees it now.
 * Returns 0, or -1 when the ring is full (the reader is too slow). */
static __always_inline int sl_emit_packet_event(struct sl_pkt_ctx *ctx, const char *emitter,
						 __u32 emitter_len)
{
	struct sl_packet_event *ev = bpf_ringbuf_reserve(&sl_events, sizeof(*ev), 0);

	if (!ev)
		return -1;
	ev->kind = SL_EV_PACKET;
	ev->ifindex = ctx->ifindex;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->hook = ctx->hook;
	ev->role = ctx->role;
	ev->ip_proto = ctx->ip_proto;
	ev->tcp_flags = ctx->tcp_flags;
	ev->l3_proto = ctx->l3_proto;
	ev->stage_pos = ctx->stage_pos;
	ev->flags = ctx->flags;
	ev->sport = ctx->sport;
	ev->dport = ctx->dport;
	ev->len = ctx->pkt_len;
	ev->verdict = ctx->redirect_ifindex ? SL_EV_REDIRECT_PENDING : SL_EV_CONTINUE;
	ev->redirect_ifindex = ctx->redirect_ifindex;
	__builtin_memcpy(ev->saddr, ctx->saddr, sizeof(ev->saddr));
	__builtin_memcpy(ev->daddr, ctx->daddr, sizeof(ev->daddr));
	__builtin_memset(ev->emitter, 0, sizeof(ev->emitter));
	if (emitter_len > sizeof(ev->emitter) - 1)
		emitter_len = sizeof(ev->emitter) - 1;
	bpf_probe_read_kernel(ev->emitter, emitter_len & 15, emitter);
	/* Waking the reader costs far more than the event (measured: ~26 ns to
	 * submit without a wakeup, ~1.5-4.5 us with one). Readers poll with a
	 * short timeout and consume; the one event that takes the backlog past
	 * SL_EVENTS_WAKEUP_BYTES wakes them so a busy stream is drained early. */
	__u64 backlog = bpf_ringbuf_query(&sl_events, BPF_RB_AVAIL_DATA);
	int crossing = backlog >= SL_EVENTS_WAKEUP_BYTES &&
		       backlog < SL_EVENTS_WAKEUP_BYTES + 2 * sizeof(*ev) + 16;

	bpf_ringbuf_submit(ev, crossing ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

#endif /* SLUICE_BPF_EVENTS_H */
