/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The nat plugin's maps, shared by nat_stage.bpf.c and the control plane
 * (nat_maps.cpp writes them; `sluicectl nat ...`, nat_cli.cpp, reads their
 * pins under <pin dir>/maps/). Layout rules as
 * for every pinned map: append only; a change of key or value size or
 * meaning renames the map (sdk/ABI.md).
 *
 *   nat_frontends  HASH      {addr, port, proto, family} -> service port
 *   nat_backends   HASH      {service id, ordinal}        -> backend
 *   nat_affinity   LRU_HASH  {service id, client addr}    -> backend, last use
 *   nat_services   HASH      service id                   -> "namespace/name:port"
 *   nat_src_ranges LPM_TRIE  {service id, client prefix}  -> 1 (allowed)
 *   nat_sock_reverse  LRU_HASH  {socket cookie, backend}  -> service address and port
 *                               (connect-time load balancing, nat_connect.bpf.c)
 *
 * A service id names one port of one service; every frontend of that port
 * (cluster IP, external IPs, load-balancer IPs, node port) carries the same
 * id. Backends of an id are stored at ordinals 0..total-1: first the
 * selectable ones (ready, not terminating) that run on this node (0..local-1),
 * then the other selectable ones (local..count-1), then the ones new flows
 * must not get (count..total-1: terminating or not ready; kept for
 * `sluicectl nat dump`). Selection is therefore `hash % count` (or
 * `hash % local` for external traffic to an external_traffic_policy = local
 * frontend): O(1) whatever the number of services or backends. Existing
 * flows never look at these maps again: the conntrack NAT_FWD/NAT_REV pair
 * holds the backend.
 *
 * A load-balancer IP frontend of a service with load_balancer_source_ranges
 * carries NAT_FE_F_SOURCE_RANGES: a new flow to it is admitted only when its
 * client address matches one of the id's prefixes in nat_src_ranges (the id
 * is the key's first 32 bits, so one longest-prefix lookup answers it).
 *
 * Node ports are frontends with the wildcard address (all zeros) of their
 * family; the stage looks them up only for traffic arriving on data
 * interfaces (see nat_stage.bpf.c).
 *
 * Connect-time load balancing (nat_connect.bpf.c, [plugins.nat]
 * connect_time_lb) picks backends from the same frontends and backends for
 * sockets of processes on the node itself and rewrites the socket's
 * destination, so their packets never carry the service address. Its
 * affinity entries use the all-zero client address of the family: every
 * process of the node is one client. nat_sock_reverse remembers, per socket
 * and backend, which service address the process asked for, so that
 * recvmsg (UDP) and getpeername report the service, not the backend.
 */
#ifndef SLUICE_PLUGIN_NAT_LAYOUT_H
#define SLUICE_PLUGIN_NAT_LAYOUT_H

#include <linux/types.h>

#define NAT_MAP_FRONTENDS "nat_frontends"
#define NAT_MAP_BACKENDS "nat_backends"
#define NAT_MAP_AFFINITY "nat_affinity"
#define NAT_MAP_SERVICES "nat_services"
#define NAT_MAP_SRC_RANGES "nat_src_ranges"
#define NAT_MAP_SOCK_REVERSE "nat_sock_reverse"
#define NAT_MAP_NODE_ADDRS "nat_node_addrs"

#define NAT_MAX_FRONTENDS 65536u
#define NAT_MAX_BACKENDS 262144u
#define NAT_MAX_AFFINITY 65536u
#define NAT_MAX_SERVICES 65536u
#define NAT_MAX_SRC_RANGES 65536u
#define NAT_MAX_SOCK_REVERSE 65536u
#define NAT_MAX_NODE_ADDRS 1024u

/* nat_node_addrs: the addresses of sluiced's network namespace (every
 * interface's, loopback's too), kept by node_addresses.cpp from netlink, so
 * connect-time balancing can tell a node port on this node (a cgroup program
 * has no route lookup to ask). Value: unused (1). */
struct nat_node_addr_key {
	__be32 addr[4]; /* IPv4 in [0] */
	__u32 family;   /* 4 or 6 */
}; /* 20 bytes */

struct nat_fe_key {
	__be32 addr[4]; /* IPv4 in [0]; all zero: node port (any local address) */
	__be16 port;
	__u8 proto;     /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 family;    /* 4 or 6 */
}; /* 20 bytes */

/* nat_fe_value.flags */
#define NAT_FE_F_EXTERNAL_LOCAL (1u << 0) /* external_traffic_policy = local (external frontends only) */
#define NAT_FE_F_AFFINITY (1u << 1)       /* session_affinity = client_ip */
#define NAT_FE_F_EXTERNAL (1u << 2)       /* external IP, load-balancer IP or node port */
#define NAT_FE_F_NODE_PORT (1u << 3)      /* the wildcard node-port frontend */
#define NAT_FE_F_INTERNAL_LOCAL (1u << 4) /* internal_traffic_policy = local (cluster IP only) */
#define NAT_FE_F_SOURCE_RANGES (1u << 5)  /* load-balancer IP with source ranges */

struct nat_fe_value {
	__u32 id;               /* service id (one port of one service) */
	__u32 count;            /* selectable backends: ordinals 0..count-1 */
	__u32 local;            /* of which on this node: ordinals 0..local-1 */
	__u32 total;            /* backends stored (count + not selectable) */
	__u32 affinity_timeout; /* seconds, with NAT_FE_F_AFFINITY */
	__u32 flags;            /* NAT_FE_F_* */
}; /* 24 bytes */

struct nat_be_key {
	__u32 id;
	__u32 ordinal;
};

/* nat_be_value.flags */
#define NAT_BE_F_LOCAL (1u << 0)       /* runs on this node */
#define NAT_BE_F_TERMINATING (1u << 1) /* no new flows; existing ones continue */
#define NAT_BE_F_NOT_READY (1u << 2)   /* no new flows */

struct nat_be_value {
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 flags; /* NAT_BE_F_* */
}; /* 20 bytes */

struct nat_aff_key {
	__u32 id;
	__u32 family;
	__be32 client[4];
}; /* 24 bytes */

struct nat_aff_value {
	__u64 last_ns;  /* bpf_ktime_get_ns() of the last new flow that used it */
	__u32 ordinal;  /* the backend's ordinal when chosen */
	__u32 reserved;
	struct nat_be_value backend; /* checked against nat_backends before reuse */
	__u32 reserved2;
}; /* 40 bytes */

#define NAT_SERVICE_NAME_LEN 120
struct nat_service_name {
	char name[NAT_SERVICE_NAME_LEN]; /* "namespace/name:port/proto" */
	__u32 reserved[2];
}; /* 128 bytes */

/* LPM trie key: prefixlen counts from `id` on (32 + the client prefix). */
struct nat_src_range_key {
	__u32 prefixlen;
	__u32 id;       /* network order is not needed: matched whole */
	__be32 addr[4]; /* IPv4 in [0] */
}; /* 24 bytes */

/* nat_sock_reverse: written by the connect and sendmsg programs for every
 * socket they point at a backend, read by recvmsg and getpeername. An LRU:
 * an entry evicted under churn only makes getpeername (or recvfrom) of an old
 * socket show the backend instead of the service; a socket cookie is never
 * reused, so a stale entry cannot match another socket. Addresses are kept in
 * the family of the packets (an IPv4-mapped IPv6 address as IPv4), because a
 * dual-stack socket sends to ::ffff:a.b.c.d through the IPv4 hooks but
 * receives through the IPv6 ones. */
struct nat_sock_rev_key {
	__u64 cookie;      /* bpf_get_socket_cookie() */
	__be32 addr[4];    /* the backend (IPv4 in [0]) */
	__be16 port;       /* the backend's port */
	__u8 family;       /* 4 or 6 */
	__u8 reserved;
	__u32 reserved2;
}; /* 32 bytes */

struct nat_sock_rev_value {
	__be32 addr[4];    /* the service address the socket asked for (IPv4 in [0]) */
	__be16 port;       /* and its port */
	__u8 family;       /* 4 or 6 */
	__u8 reserved;
	__u32 id;          /* service id (nat_services), for debugging */
}; /* 24 bytes */

/* Which sockets connect-time load balancing rewrites (nat_connect.bpf.c
 * rodata nat_ctlb_protocols, from [plugins.nat] connect_time_lb). */
#define NAT_CTLB_TCP (1u << 0)
#define NAT_CTLB_UDP (1u << 1)

#endif /* SLUICE_PLUGIN_NAT_LAYOUT_H */
