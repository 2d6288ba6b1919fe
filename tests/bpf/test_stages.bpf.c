// SPDX-License-Identifier: GPL-2.0-only
/* Small stages for the entry/chain tests. Each leaves a trace of its passage
 * in ctx->scratch[0] (a decimal digit appended per stage) so tests can check
 * the order stages ran in, and ends with one SDK verb. */
#include <sluice/bpf/sluice.h>

static __always_inline void mark(struct sl_pkt_ctx *ctx, __u64 digit)
{
	ctx->scratch[0] = ctx->scratch[0] * 10 + digit;
}

SL_STAGE(t_next_1)
{
	mark(ctx, 1);
	return sl_next(skb, ctx);
}

SL_STAGE(t_next_2)
{
	mark(ctx, 2);
	return sl_next(skb, ctx);
}

SL_STAGE(t_drop_plugin0)
{
	mark(ctx, 3);
	return sl_drop(skb, ctx, SL_R_PLUGIN_0);
}

/* Drops with a reason that says which order it saw: 1 then 2 -> plugin-1,
 * 2 then 1 -> plugin-2, anything else -> plugin-3. */
SL_STAGE(t_judge_order)
{
	__u64 seen = ctx->scratch[0];

	mark(ctx, 4);
	if (seen == 12)
		return sl_drop(skb, ctx, SL_R_PLUGIN_1);
	if (seen == 21)
		return sl_drop(skb, ctx, SL_R_PLUGIN_2);
	return sl_drop(skb, ctx, SL_R_PLUGIN_3);
}

/* Votes the packet established and forwardable, as conntrack does for an
 * answered flow: the chain goes on in lane 1. */
SL_STAGE(t_vote)
{
	mark(ctx, 5);
	sl_vote_forward(ctx);
	sl_vote_established(ctx);
	return sl_next(skb, ctx);
}

/* Vetoes the fast path for this packet. */
SL_STAGE(t_veto)
{
	mark(ctx, 7);
	sl_veto_forward(ctx);
	return sl_next(skb, ctx);
}

/* Asks the chain end to redirect to ifindex 1 (lo). */
SL_STAGE(t_set_redirect)
{
	mark(ctx, 6);
	sl_set_redirect(ctx, 1, 0);
	return sl_next(skb, ctx);
}

char LICENSE[] SEC("license") = "GPL";
