/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connect-time load balancing for processes on the node itself ([plugins.nat]
 * connect_time_lb): cgroup socket programs that pick a service's backend when
 * a socket is pointed at the service, instead of NATing every packet.
 *
 * The tc stage (nat_stage.bpf.c) runs on the ingress of workload and data
 * interfaces, so it never sees what the node itself sends: without these
 * programs a process on the node cannot reach a service at all. With them:
 *
 *  - connect4/6 (TCP, and UDP sockets that connect): the destination, if it
 *    is a frontend (nat_frontends: its exact address, or a node port on any
 *    of the node's addresses, nat_node_addrs), becomes a backend chosen by
 *    nat_select_backend() — the same maps and the same rule as the tc stage,
 *    hashed on the socket cookie;
 *  - sendmsg4/6 (UDP sendto on an unconnected socket): the same per
 *    datagram. One socket hashes the same for one service, so its datagrams
 *    stay on one backend while the backends do not change, and move to a
 *    live one when its backend is removed;
 *  - recvmsg4/6 (UDP recvfrom) and getpeername4/6: the backend's address is
 *    turned back into the service's, so the process sees replies from, and
 *    a peer that is, the address it asked for. nat_sock_reverse (written by
 *    connect and sendmsg, nat_layout.h) holds {socket, backend} -> service.
 *
 * The packets of such a socket carry the backend's address from the start:
 * the conntrack stage tracks them as ordinary (NORMAL) flows and the tc nat
 * stage finds no frontend for them, so nothing is NATed twice.
 *
 * A service with no selectable backend fails the call with ECONNREFUSED (what
 * the tc path's no_backend = "reject" makes a client see).
 *
 * Two service addresses that share a backend, one unconnected UDP socket
 * sending to both: replies from the one backend could not be told apart, and
 * a socket's port cannot change here (the tc path moves the source port
 * instead). The second service's datagrams get another of its backends not
 * already answering this socket (up to CTLB_COLLISION_TRIES tried); without
 * one, sendmsg fails with EADDRINUSE.
 *
 * Scope: the programs are attached to a cgroup (by default the root: every
 * process of the machine), but only act on sockets in the network namespace
 * sluiced manages (nat_ctlb_netns_cookie): workloads in their own namespaces
 * keep the tc path, and several sluiced instances (a lab of netns nodes on
 * one machine) do not rewrite each other's sockets.
 *
 * IPv4-mapped IPv6 destinations (::ffff:a.b.c.d on a dual-stack socket) are
 * looked up as IPv4 frontends.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "nat_layout.h"
#include "nat_select.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NAT_MAX_SOCK_REVERSE);
	__type(key, struct nat_sock_rev_key);
	__type(value, struct nat_sock_rev_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_sock_reverse SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_NODE_ADDRS);
	__type(key, struct nat_node_addr_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_node_addrs SEC(".maps");

/* Set by connect_lb.cpp before load: the network namespace whose sockets are
 * balanced (sluiced's) and which protocols (NAT_CTLB_TCP / NAT_CTLB_UDP). */
const volatile __u64 nat_ctlb_netns_cookie = 0;
const volatile __u32 nat_ctlb_protocols = 0;

/* A socket address as the packets will carry it: an IPv4-mapped IPv6
 * address is family 4 with the IPv4 address in addr[0]. */
struct ctlb_addr {
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 mapped; /* came from (and goes back to) ::ffff:a.b.c.d of an IPv6 hook */
};

static __always_inline int ctlb_our_namespace(struct bpf_sock_addr *ctx)
{
	return bpf_get_netns_cookie(ctx) == nat_ctlb_netns_cookie;
}

static __always_inline int ctlb_balances(struct bpf_sock_addr *ctx)
{
	__u32 protocol = ctx->protocol;
	__u32 bit = protocol == IPPROTO_TCP ? NAT_CTLB_TCP
		    : protocol == IPPROTO_UDP ? NAT_CTLB_UDP
					      : 0;

	return (nat_ctlb_protocols & bit) && ctlb_our_namespace(ctx);
}

/* `ipv6` is a constant in every caller: the verifier only lets IPv4 hooks
 * touch user_ip4 and IPv6 hooks user_ip6. */
static __always_inline void ctlb_read(struct bpf_sock_addr *ctx, int ipv6, struct ctlb_addr *a)
{
	a->port = (__be16)ctx->user_port;
	if (!ipv6) {
		a->family = 4;
		a->addr[0] = ctx->user_ip4;
		return;
	}
	a->addr[0] = ctx->user_ip6[0];
	a->addr[1] = ctx->user_ip6[1];
	a->addr[2] = ctx->user_ip6[2];
	a->addr[3] = ctx->user_ip6[3];
	if (a->addr[0] == 0 && a->addr[1] == 0 && a->addr[2] == bpf_htonl(0xffff)) {
		a->family = 4;
		a->mapped = 1;
		a->addr[0] = a->addr[3];
		a->addr[2] = 0;
		a->addr[3] = 0;
		return;
	}
	a->family = 6;
}

static __always_inline void ctlb_write(struct bpf_sock_addr *ctx, int ipv6,
				       const struct ctlb_addr *a)
{
	ctx->user_port = a->port;
	if (!ipv6) {
		ctx->user_ip4 = a->addr[0];
	} else if (a->mapped) {
		ctx->user_ip6[3] = a->addr[0];
	} else {
		ctx->user_ip6[0] = a->addr[0];
		ctx->user_ip6[1] = a->addr[1];
		ctx->user_ip6[2] = a->addr[2];
		ctx->user_ip6[3] = a->addr[3];
	}
}

/* How many other backends a datagram tries when its socket already sends to
 * the one picked on behalf of another service address. */
#define CTLB_COLLISION_TRIES 8

/* Whether this socket already sends to backend `be` for another service
 * address than `dst`: its replies could then not be told apart, as the
 * socket's port cannot change (a NAT would move it, as the tc path does). */
static __always_inline int ctlb_taken_for_other(struct nat_sock_rev_key *rk,
						const struct nat_be_value *be,
						const struct ctlb_addr *dst)
{
	__builtin_memcpy(rk->addr, be->addr, sizeof(rk->addr));
	rk->port = be->port;
	struct nat_sock_rev_value *held = bpf_map_lookup_elem(&nat_sock_reverse, rk);

	return held && (held->port != dst->port || held->family != dst->family ||
			!nat_addr_eq(held->addr, dst->addr));
}

/* Points `dst` at a backend if it is a frontend: 1 rewritten, 0 not a
 * service, -1 the service has no selectable backend, -2 (a datagram of an
 * unconnected socket) every backend it may take already answers this socket
 * for another service address. */
static __always_inline int ctlb_pick(struct bpf_sock_addr *ctx, struct ctlb_addr *dst,
				     int datagram)
{
	struct nat_fe_key fk = {};

	fk.family = dst->family;
	fk.proto = (__u8)ctx->protocol;
	fk.port = dst->port;
	__builtin_memcpy(fk.addr, dst->addr, sizeof(fk.addr));
	struct nat_fe_value *fe = bpf_map_lookup_elem(&nat_frontends, &fk);

	if (!fe) {
		/* A node port, if the address is one of the node's. */
		struct nat_node_addr_key nk = {};

		__builtin_memcpy(nk.addr, dst->addr, sizeof(nk.addr));
		nk.family = dst->family;
		if (!bpf_map_lookup_elem(&nat_node_addrs, &nk))
			return 0;
		__builtin_memset(fk.addr, 0, sizeof(fk.addr));
		fe = bpf_map_lookup_elem(&nat_frontends, &fk);
		if (!fe || !(fe->flags & NAT_FE_F_NODE_PORT))
			return 0;
	}

	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 hash = nat_mix(0x5bd1e995u, (__u32)cookie);

	hash = nat_hash_finish(nat_mix(nat_mix(hash, (__u32)(cookie >> 32)), fe->id));
	/* The affinity client of every process on the node (nat_layout.h). */
	const __be32 this_node[4] = {};
	__u32 ordinal = 0;
	int kept_by_affinity = 0;
	/* The node's processes are internal clients: internal_traffic_policy
	 * = local narrows them to this node's backends (a cluster IP's only;
	 * external_traffic_policy is about clients from outside, so a node port
	 * of a "local" service is served by all its backends here, as
	 * kube-proxy serves traffic the node itself sends). */
	__u32 eligible = (fe->flags & NAT_FE_F_INTERNAL_LOCAL) ? fe->local : fe->count;
	struct nat_be_value *be = nat_select_backend(fe, eligible, hash, dst->family, this_node,
						     &ordinal, &kept_by_affinity);

	if (!be || be->family != dst->family)
		return -1;

	struct nat_sock_rev_key rk = {};
	struct nat_sock_rev_value rv = {};

	rk.cookie = cookie;
	rk.family = dst->family;
	/* A connected socket has one peer: its entry is simply replaced. An
	 * unconnected one sending to two service addresses that share a
	 * backend must get another backend for the second, or refuse. */
	if (datagram && ctlb_taken_for_other(&rk, be, dst)) {
		struct nat_be_key bk = {.id = fe->id};
		int i, found = 0;

		for (i = 1; i <= CTLB_COLLISION_TRIES && i < (int)eligible; i++) {
			bk.ordinal = (ordinal + i) % eligible;
			be = bpf_map_lookup_elem(&nat_backends, &bk);
			if (be && be->family == dst->family && !ctlb_taken_for_other(&rk, be, dst)) {
				found = 1;
				break;
			}
		}
		if (!found)
			return -2;
	}
	__builtin_memcpy(rk.addr, be->addr, sizeof(rk.addr));
	rk.port = be->port;
	__builtin_memcpy(rv.addr, dst->addr, sizeof(rv.addr));
	rv.port = dst->port;
	rv.family = dst->family;
	rv.id = fe->id;
	/* An LRU makes room for it; should it still fail, the socket is
	 * balanced all the same and only shows the backend as its peer. */
	bpf_map_update_elem(&nat_sock_reverse, &rk, &rv, BPF_ANY);

	__builtin_memcpy(dst->addr, be->addr, sizeof(dst->addr));
	dst->port = be->port;
	return 1;
}

/* connect and sendmsg: service -> backend. */
static __always_inline int ctlb_forward(struct bpf_sock_addr *ctx, int ipv6, int datagram)
{
	struct ctlb_addr dst = {};

	if (!ctlb_balances(ctx))
		return 1;
	ctlb_read(ctx, ipv6, &dst);
	int picked = ctlb_pick(ctx, &dst, datagram);

	if (picked < 0) {
		bpf_set_retval(picked == -2 ? -EADDRINUSE : -ECONNREFUSED);
		return 0;
	}
	if (picked > 0)
		ctlb_write(ctx, ipv6, &dst);
	return 1;
}

/* recvmsg and getpeername: backend -> the service this socket asked for. */
static __always_inline int ctlb_reverse(struct bpf_sock_addr *ctx, int ipv6)
{
	struct ctlb_addr peer = {};
	struct nat_sock_rev_key rk = {};

	if (!ctlb_our_namespace(ctx))
		return 1;
	ctlb_read(ctx, ipv6, &peer);
	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, peer.addr, sizeof(rk.addr));
	rk.port = peer.port;
	rk.family = peer.family;
	struct nat_sock_rev_value *service = bpf_map_lookup_elem(&nat_sock_reverse, &rk);

	if (!service || service->family != peer.family)
		return 1;
	__builtin_memcpy(peer.addr, service->addr, sizeof(peer.addr));
	peer.port = service->port;
	ctlb_write(ctx, ipv6, &peer);
	return 1;
}

/* One program per hook, nat_<hook> (connect_lb.cpp attaches them by name). */
#define CTLB_PROGRAM(hook, direction, ipv6)                 \
	SEC("cgroup/" #hook)                                \
	int nat_##hook(struct bpf_sock_addr *ctx)           \
	{                                                   \
		return direction(ctx, ipv6);                \
	}

static __always_inline int ctlb_connect(struct bpf_sock_addr *ctx, int ipv6)
{
	return ctlb_forward(ctx, ipv6, 0);
}

static __always_inline int ctlb_send(struct bpf_sock_addr *ctx, int ipv6)
{
	return ctlb_forward(ctx, ipv6, 1);
}

CTLB_PROGRAM(connect4, ctlb_connect, 0)
CTLB_PROGRAM(connect6, ctlb_connect, 1)
CTLB_PROGRAM(sendmsg4, ctlb_send, 0)
CTLB_PROGRAM(sendmsg6, ctlb_send, 1)
CTLB_PROGRAM(recvmsg4, ctlb_reverse, 0)
CTLB_PROGRAM(recvmsg6, ctlb_reverse, 1)
CTLB_PROGRAM(getpeername4, ctlb_reverse, 0)
CTLB_PROGRAM(getpeername6, ctlb_reverse, 1)

char LICENSE[] SEC("license") = "GPL";
