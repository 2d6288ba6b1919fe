/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Pinned layout of Sluice's shared maps and of the per-packet context.
 *
 * This header is the one place for map names, sizes and value layouts. It is
 * plain C so that BPF objects, the daemon, sluicectl and third-party plugins
 * all compile the same definitions. Any change that alters a pinned map's
 * key/value size or meaning bumps SL_LAYOUT_VERSION; the daemon then refuses
 * to reuse pins of the old layout (see sdk/ABI.md).
 */
#ifndef SLUICE_BPF_LAYOUT_H
#define SLUICE_BPF_LAYOUT_H

#include <linux/types.h>

#define SL_LAYOUT_VERSION 2u
/* The layout a daemon of this version migrates pins from (sdk/ABI.md,
 * "Upgrades"): the previous one. Older pins need --cleanup. */
#define SL_LAYOUT_MIGRATES_FROM 1u
#define SL_LAYOUT_MAGIC 0x534c4345u /* "SLCE" */

/* Pin directory: <bpf.root>/<bpf.instance>/ ; maps live in its "maps" folder. */
#define SL_PIN_MAPS_SUBDIR "maps"

/* Shared map names (also their pin names under maps/). */
#define SL_MAP_STATE "sl_state"       /* per-CPU packet context */
#define SL_MAP_JUMP "sl_jump"         /* PROG_ARRAY holding every chain */
#define SL_MAP_COUNTERS "sl_counters" /* per-CPU counters */
#define SL_MAP_SETTINGS "sl_settings" /* runtime settings (log level) */
#define SL_MAP_META "sl_meta"         /* layout marker + active chain bank */
#define SL_MAP_IFSTATE "sl_ifstate"   /* ifindex -> managed interface */
#define SL_MAP_REGISTRY "sl_registry" /* loaded plugins and their stages */
#define SL_MAP_EVENTS "sl_events"     /* ring buffer of packet events */
#define SL_MAP_ROUTE_CACHE "sl_route_cache" /* the fast path's cached FIB answers */
#define SL_MAP_ROUTE_EPOCH "sl_route_epoch" /* bumped when routes, neighbours,
					     * links or sl_ifstate change */

/* Roles, in the order the chains are laid out in sl_jump. */
enum sl_role {
	SL_ROLE_WORKLOAD = 0,
	SL_ROLE_DATA = 1,
	SL_ROLE_TUNNEL = 2,
	SL_ROLE_L3 = 3,
	SL_ROLE_COUNT = 4,
};

enum sl_hook {
	SL_HOOK_INGRESS = 0, /* packets arriving on the interface (tc ingress) */
	SL_HOOK_EGRESS = 1,  /* packets leaving through the interface (tc egress) */
	SL_HOOK_COUNT = 2,
};

enum sl_log_level {
	SL_LOG_OFF = 0,
	SL_LOG_INFO = 1,
	SL_LOG_DEBUG = 2,
};

/* Chain geometry. sl_jump = SL_BANKS x (role, hook) chains x SL_LANES x
 * SL_MAX_STAGES. Two banks let a restarting daemon write complete new chains
 * beside the live ones and switch interfaces over atomically (entry programs
 * carry their bank in read-only data and are replaced in place). Each chain
 * has two lanes (the chain protocol, sdk/ABI.md): lane 0 holds every stage,
 * lane 1 the stages that see every packet of an established flow, in the
 * same order; a stage that votes a flow established moves the packet from
 * lane 0 to lane 1 (sl_vote_established() in sluice.h). */
#define SL_MAX_STAGES 16u
#define SL_LANES 2u
#define SL_LANE_ALL 0u
#define SL_LANE_ESTABLISHED 1u
#define SL_CHAINS ((unsigned)SL_ROLE_COUNT * (unsigned)SL_HOOK_COUNT)
#define SL_BANKS 2u
#define SL_JUMP_SLOTS (SL_BANKS * SL_CHAINS * SL_LANES * SL_MAX_STAGES)

static inline __u32 sl_jump_lane_base(__u32 bank, __u32 role, __u32 hook, __u32 lane)
{
	return (((bank * SL_CHAINS) + role * SL_HOOK_COUNT + hook) * SL_LANES + lane) *
	       SL_MAX_STAGES;
}

/* sl_next_slot (sluice.h) of a program the core did not instantiate for a
 * chain position, and of a lane the stage is not in: the next slot is
 * computed at run time. */
#define SL_NEXT_SLOT_AT_RUN_TIME 0xffffffffu

static inline __u32 sl_jump_base(__u32 bank, __u32 role, __u32 hook)
{
	return sl_jump_lane_base(bank, role, hook, SL_LANE_ALL);
}

/* Counters: per-CPU array indexed by [interface slot][hook][reason]. */
#define SL_MAX_IFACES 1024u
/* Blocks of 16 per owner (reasons.def); a power of two, as sl_count() masks. */
#define SL_REASON_COUNT 128u
#define SL_COUNTER_SLOTS (SL_MAX_IFACES * SL_HOOK_COUNT * SL_REASON_COUNT)

static inline __u32 sl_counter_base(__u32 iface_slot, __u32 hook)
{
	return (iface_slot * SL_HOOK_COUNT + hook) * SL_REASON_COUNT;
}

struct sl_counter {
	__u64 packets;
	__u64 bytes;
};

enum sl_reason {
#define SL_REASON(id, num, name, kind, description) id = num,
#include "reasons.def"
#undef SL_REASON
};

/* Rule for packets the entry cannot parse, or whose chain has a hole. */
enum sl_fault_rule {
	SL_FAULT_DROP = 0,
	SL_FAULT_PASS = 1,
};

/* sl_settings[0] */
struct sl_settings {
	__u32 log_level; /* enum sl_log_level */
	__u32 reserved[7];
};

/* sl_meta[0] */
struct sl_meta {
	__u32 magic;         /* SL_LAYOUT_MAGIC */
	__u32 layout;        /* SL_LAYOUT_VERSION of whoever created the pins */
	__u32 active_bank;   /* bank the attached entry programs jump into */
	__u32 generation;    /* bumped on every chain install */
	__u64 installed_ns;  /* CLOCK_REALTIME of the last chain install */
	char node[64];       /* [node] name of the daemon that installed */
};

#define SL_IFNAME_LEN 16
#define SL_LOG_PREFIX_LEN 20 /* 15 dash-padded name chars + "-I:" + NUL */

/* sl_ifstate: key = ifindex */
#define SL_IF_F_QDISC_OURS (1u << 0) /* we created clsact; --cleanup deletes it */
#define SL_IF_F_INGRESS (1u << 1)    /* ingress entry attached */
#define SL_IF_F_EGRESS (1u << 2)     /* egress entry attached */
#define SL_IF_F_L3 (1u << 3)         /* no Ethernet header */
struct sl_ifstate {
	__u32 slot;  /* counter slot */
	__u32 role;  /* enum sl_role */
	__u32 flags; /* SL_IF_F_* */
	__u32 bank;  /* chain bank the attached entry uses */
	char name[SL_IFNAME_LEN];
	__u64 attached_ns; /* CLOCK_REALTIME when first attached */
};

/* sl_route_cache: bpf_fib_lookup() answers of the fast path
 * (<sluice/bpf/fast_path.h>), so an established flow pays one hash lookup per
 * packet instead of a FIB walk and a neighbour lookup (~0.5 us each on the
 * development VM). An entry holds while sl_route_epoch[0] still has the value
 * it was made under — the daemon bumps it on any route, rule, neighbour,
 * address, link or sl_ifstate change — and for SL_ROUTE_CACHE_MAX_AGE_NS at
 * most, which bounds staleness while no daemon runs. Only resolved routes
 * are cached. LRU: a busy node evicts pairs it has not seen for longest. */
#define SL_ROUTE_CACHE_ENTRIES 65536u
#define SL_ROUTE_CACHE_MAX_AGE_NS 1000000000ull

struct sl_route_key {
	__u32 ifindex; /* the packet's arrival interface (rules may match on it) */
	__u8 family;   /* AF_INET or AF_INET6 */
	__u8 tos;      /* rules may match on it */
	__u16 pad;     /* zero */
	__be32 src[4]; /* IPv4 in [0], rest zero */
	__be32 dst[4];
}; /* 40 bytes */

struct sl_route_value {
	__u64 looked_up_ns; /* bpf_ktime_get_coarse_ns() of the FIB lookup (a tick
			     * is precise enough for its lifetime, and cheaper) */
	__u32 epoch;        /* sl_route_epoch[0] at the lookup */
	__u32 ifindex;      /* the route's interface */
	__be32 nexthop[4];  /* the route's next hop (IPv4 in [0]) */
	__u8 dmac[6];
	__u8 smac[6];
	__u8 workload;      /* the interface is a managed workload veth (Ethernet) */
	__u8 pad[3];
}; /* 48 bytes */

/* sl_registry: array of records describing plugins and stages, written by
 * the daemon on every chain install so sluicectl can explain the pipeline
 * while the daemon is down. */
#define SL_REGISTRY_SLOTS 64u
#define SL_REG_NAME_LEN 32
enum sl_registry_kind {
	SL_REG_EMPTY = 0,
	SL_REG_PLUGIN = 1,
	SL_REG_STAGE = 2,
};
struct sl_registry_entry {
	__u32 kind;        /* enum sl_registry_kind */
	__u32 status;      /* 0 ok, otherwise failed (see message) */
	char plugin[SL_REG_NAME_LEN];
	char name[SL_REG_NAME_LEN];    /* stage name (stages) */
	char version[SL_REG_NAME_LEN]; /* plugin version (plugins) */
	__u32 abi_major, abi_minor;    /* plugins */
	__u32 roles;  /* bit per enum sl_role (stages) */
	__u32 hooks;  /* bit per enum sl_hook (stages) */
	__s32 order;  /* stage order number */
	__u32 prog_id; /* kernel program id of the stage */
	char message[128]; /* failure text for status != 0 */
	/* The stage's chain-protocol declarations (layout 2): */
	__u32 every_packet_hooks; /* bit per enum sl_hook: sees every packet there */
	__u32 may;                /* SL_MAY_* */
	__u32 scratch_reads;      /* bit per enum sl_scratch_slot */
	__u32 scratch_writes;
	/* The program's tag (bpf_prog_info.tag; zero before ABI 2.1): what
	 * every instance of the program in the chains shares (sdk/ABI.md,
	 * "Direct tail calls"), so sluicectl recognises them. */
	__u8 prog_tag[8];
	__u32 reserved[2];
};

/* What a stage declares it may do (StageSpec::may, sl_registry). The core
 * checks the declarations when it builds the chains (sdk/ABI.md). */
#define SL_MAY_DROP (1u << 0)            /* end the chain with sl_drop() */
#define SL_MAY_REWRITE (1u << 1)         /* change the packet's bytes */
#define SL_MAY_REDIRECT (1u << 2)        /* set the redirect the chain end applies */
#define SL_MAY_VOTE_ESTABLISHED (1u << 3) /* vote a flow established (conntrack) */
#define SL_MAY_APPROVE (1u << 4)         /* record that a flow passed the judges */

/* Named scratch words, ctx->scratch[slot], each with one owner
 * (scratch.def, the one list; StageSpec::scratch_reads/writes). */
enum sl_scratch_slot {
#define SL_SCRATCH(id, slot, name, owner, description) id = slot,
#include "scratch.def"
#undef SL_SCRATCH
};
#define SL_SCRATCH_SLOTS 8u

/* ctx->votes: the chain protocol's votes on forwarding (sdk/ABI.md). */
#define SL_VOTE_ESTABLISHED (1u << 0) /* conntrack: an established, answered (and,
				       * where judges run, approved) flow; the
				       * packet is on lane 1 */
#define SL_VOTE_FORWARD (1u << 1)     /* conntrack: the chain end may forward it by
				       * the fast path (route cache), past the host */
#define SL_VOTE_VETO (1u << 2)        /* some stage: not this packet; the host stack
				       * forwards it */

/* ctx->chain_flags: facts about the packet's chain, frozen in the entry. */
#define SL_CHAIN_F_JUDGED (1u << 0)   /* a first-packets stage may drop: flows skip
				       * it only once approved */
#define SL_CHAIN_F_PEER_EGRESS_WATCHED (1u << 1) /* the workload egress chain has a
				       * stage that sees every packet: the fast path
				       * into a workload goes through that hook */

/* ctx->redirect_flags: how the chain end sends a redirected packet. */
#define SL_REDIRECT_EGRESS 0u            /* bpf_redirect() to the egress of ifindex */
#define SL_REDIRECT_INGRESS (1u << 0)    /* bpf_redirect(BPF_F_INGRESS) */
#define SL_REDIRECT_PEER (1u << 1)       /* bpf_redirect_peer() (from ingress only) */
#define SL_REDIRECT_NEIGH (1u << 2)      /* bpf_redirect_neigh() to redirect_nh */
#define SL_REDIRECT_NH_V6 (1u << 3)      /* redirect_nh is IPv6 (else IPv4 in [0]) */

/* Per-packet context, one per CPU (sl_state[0]); the entry program zeroes it
 * (up to log_prefix) and fills it for every packet, stages read and extend it.
 * Its size is fixed at SL_PKT_CTX_SIZE for the whole layout major: a minor
 * version takes new fields out of `reserved` (which the entry of that version
 * zeroes), so the pinned map never changes size (sdk/ABI.md, "Context"). */
#define SL_PKT_CTX_SIZE 256u
#define SL_PKT_F_L2 (1u << 0)       /* has an Ethernet header */
#define SL_PKT_F_FRAGMENT (1u << 1) /* IP fragment: L4 fields only on the first */
#define SL_PKT_F_LATER_FRAGMENT (1u << 2) /* not the first fragment: no L4 header */

struct sl_pkt_ctx {
	__u64 start_ns;     /* entry time when logging, else 0 */
	__u32 ifindex;
	__u32 counter_base; /* sl_counter_base(slot, hook) */
	__u32 pkt_len;      /* skb->len at entry */
	__u16 jump_base;    /* first slot of the packet's current lane in sl_jump */
	__u8 stage_pos;     /* position of the running stage in its lane */
	__u8 hook;          /* enum sl_hook */
	__u8 role;          /* enum sl_role */
	__u8 log_level;     /* enum sl_log_level, sampled at entry */
	__u8 missed_rule;   /* enum sl_fault_rule for holes in the chain */
	__u8 flags;         /* SL_PKT_F_* */
	__u16 l3_proto;     /* ETH_P_IP / ETH_P_IPV6, host order; 0 for non-IP */
	__u8 ip_proto;      /* IPPROTO_* of the L4 header */
	__u8 tcp_flags;     /* TCP flags byte */
	__u16 l3_off;       /* offset of the IP header */
	__u16 l4_off;       /* offset of the L4 header (0 if none) */
	__be32 saddr[4];    /* IPv4 in [0], IPv6 all four */
	__be32 daddr[4];
	__be16 sport;       /* TCP/UDP/SCTP ports; ICMP: sport = id, dport = type<<8|code */
	__be16 dport;
	__u32 mark;
	/* The chain protocol (sdk/ABI.md). */
	__u16 est_jump_base; /* first slot of lane 1 of this chain */
	__u8 chain_flags;    /* SL_CHAIN_F_* */
	__u8 votes;          /* SL_VOTE_* */
	__u8 est_pos[SL_MAX_STAGES]; /* lane-1 position of the stage at each lane-0
				      * position (0xff: not in lane 1) */
	__u8 last_judge_pos; /* lane-0 position of the chain's last judge (0xff: none):
			      * its approval is the flow's (sl_ct_approve()) */
	__u8 pad0[3];
	/* The redirect the chain end applies (sl_set_redirect*()). */
	__u32 redirect_ifindex;
	__u32 redirect_flags; /* SL_REDIRECT_* */
	__be32 redirect_nh[4];
	/* Endpoints: the workload or host endpoint the packet comes from and goes
	 * to (ids of the routes/endpoint maps; 0 unknown), for policy. */
	__u32 src_endpoint;
	__u32 dst_endpoint;
	/* Tunnel metadata: set by the decapsulating stage (the outer source, the
	 * VNI) or by a stage asking for encapsulation (the remote node). */
	__be32 tunnel_remote[4];
	__u32 tunnel_id;      /* VNI */
	__u32 tunnel_ifindex; /* device the tunnel leaves by / came in by */
	__u64 scratch[SL_SCRATCH_SLOTS]; /* named slots, scratch.def */
	char log_prefix[SL_LOG_PREFIX_LEN]; /* filled only when logging */
	/* The rest, up to SL_PKT_CTX_SIZE, is reserved (see above). */
};

/* sl_state's value: the context padded to its fixed size. */
union sl_pkt_ctx_slot {
	struct sl_pkt_ctx ctx;
	__u8 bytes[SL_PKT_CTX_SIZE];
};
#ifdef __cplusplus
#define SL_STATIC_ASSERT static_assert
#else
#define SL_STATIC_ASSERT _Static_assert
#endif
SL_STATIC_ASSERT(sizeof(struct sl_pkt_ctx) <= SL_PKT_CTX_SIZE, "the context outgrew its slot");
SL_STATIC_ASSERT(__builtin_offsetof(struct sl_pkt_ctx, est_pos) % 8 == 0,
	       "the entry stores est_pos as two words");

/* Events in sl_events (ring buffer), streamed by `sluicectl monitor`. Any
 * stage may emit them with sl_emit_packet_event() from <sluice/bpf/events.h>. */
#define SL_EVENTS_RING_BYTES (1u << 20)
enum sl_event_kind {
	SL_EV_PACKET = 1,
};
enum sl_event_verdict {
	SL_EV_CONTINUE = 0,         /* chain goes on: no verdict yet */
	SL_EV_REDIRECT_PENDING = 1, /* a stage set a redirect the chain end applies */
};
struct sl_packet_event {
	__u32 kind;      /* SL_EV_PACKET */
	__u32 ifindex;
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u8 hook;       /* enum sl_hook */
	__u8 role;       /* enum sl_role */
	__u8 ip_proto;
	__u8 tcp_flags;
	__u16 l3_proto;  /* ETH_P_IP / ETH_P_IPV6 */
	__u8 stage_pos;  /* position of the emitting stage in the chain */
	__u8 flags;      /* SL_PKT_F_* */
	__be16 sport;
	__be16 dport;
	__u32 len;
	__u32 verdict;   /* enum sl_event_verdict: the verdict so far */
	__u32 redirect_ifindex;
	__be32 saddr[4];
	__be32 daddr[4];
	char emitter[16]; /* plugin or stage that emitted it */
};

#endif /* SLUICE_BPF_LAYOUT_H */
