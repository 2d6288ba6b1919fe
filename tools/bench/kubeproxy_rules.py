#!/usr/bin/env python3
"""One set of N ClusterIP services, written three ways for kubeproxy_bench.sh.

  kubeproxy_rules.py iptables --services N --backends IP,IP,... [--node-ip IP]
      an iptables-restore file in kube-proxy's iptables-mode layout
  kubeproxy_rules.py nftables --services N --backends IP,... [--node-ip IP]
      an `nft -f` file in kube-proxy's nftables-mode layout
  kubeproxy_rules.py sluice --services N --backends IP,... [--node-name NAME]
      a state file of [[service]] tables for sluiced's nat plugin
  kubeproxy_rules.py vip --services N --target first|middle|last
      the cluster IP of the service the benchmark connects to
  kubeproxy_rules.py selftest
      checks the chain names against kube-proxy's own unit tests

Service i (0-based) is bench/svc-<i>, port "p80" 80/tcp, cluster IP
10.96.<i / 250>.<i % 250 + 1>, and every service has the same backends on
port 8080 (the lab's backend workloads, so that whichever service a packet
hits, it only reaches namespaces the benchmark made). Services are written in
index order: in the iptables layout KUBE-SERVICES tests them one rule after
the other, so the last service is the one a packet reaches after N rules.

The layouts follow kube-proxy's syncProxyRules() (pkg/proxy/iptables and
pkg/proxy/nftables, proxier.go) as its TestOverallIPTablesRules and
TestOverallNFTablesRules expect them, for ClusterIP services with cluster
traffic policy and no session affinity, plus the jump rules from the
built-in chains that kube-proxy adds outside its restore (here in the same
transaction). Notes on both layouts: ../shared/reference/kube-proxy-rule-layout.md
(beside the repository).
"""
import argparse
import base64
import hashlib
import sys

NAMESPACE = "bench"
PORT_NAME = "p80"
SERVICE_PORT = 80
TARGET_PORT = 8080
PROTOCOL = "tcp"
# kube-proxy's --cluster-cidr (the lab's pods are 10.65.x.x, its uplink
# 10.64.0.x): traffic from outside it to a cluster IP is masqueraded.
CLUSTER_CIDR = "10.64.0.0/14"
SERVICE_CIDR = "10.96.0.0/12"
MASQUERADE_MARK = "0x4000"
SERVICES_PER_THIRD_OCTET = 250
MAX_SERVICES = SERVICES_PER_THIRD_OCTET * 256
# kube-proxy's largeClusterEndpointsThreshold: above it, the per-endpoint
# rules of the iptables layout carry no comments.
LARGE_CLUSTER_ENDPOINTS = 1000


def service_name(i):
    return f"svc-{i}"


def cluster_ip(i):
    return f"10.96.{i // SERVICES_PER_THIRD_OCTET}.{i % SERVICES_PER_THIRD_OCTET + 1}"


def port_name(i):
    """kube-proxy's ServicePortName.String(): "namespace/name:port"."""
    return f"{NAMESPACE}/{service_name(i)}:{PORT_NAME}"


def hash_base32(text, length):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


# --- iptables layout (pkg/proxy/iptables/proxier.go) ---

def svc_chain(spn):
    return "KUBE-SVC-" + hash_base32(spn + PROTOCOL, 16)


def sep_chain(spn, endpoint):
    return "KUBE-SEP-" + hash_base32(spn + PROTOCOL + endpoint, 16)


def probability(remaining):
    return f"{1.0 / remaining:0.10f}"


def iptables_rules(services, backends):
    large_cluster = services * len(backends) > LARGE_CLUSTER_ENDPOINTS

    def comment(text):
        return f'-m comment --comment "{text}" ' if not large_cluster else ""

    endpoints = [f"{ip}:{TARGET_PORT}" for ip in backends]
    new = "-m conntrack --ctstate NEW"
    out = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-EXTERNAL-SERVICES - [0:0]",
        ":KUBE-FIREWALL - [0:0]",
        ":KUBE-FORWARD - [0:0]",
        ":KUBE-PROXY-FIREWALL - [0:0]",
        # kube-proxy prepends these (iptablesJumpChains, EnsureRule(Prepend)),
        # so they end up in the reverse of its list's order.
        f'-A INPUT {new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        f'-A INPUT {new} -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A INPUT -j KUBE-FIREWALL",
        f'-A FORWARD {new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        f'-A FORWARD {new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        f'-A FORWARD {new} -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        f'-A OUTPUT {new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        f'-A OUTPUT {new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-A OUTPUT -j KUBE-FIREWALL",
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
        "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
        f"-m mark --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
    ]
    per_service_chains, per_service_rules, service_rules = [], [], []
    for i in range(services):
        spn, ip = port_name(i), cluster_ip(i)
        svc = svc_chain(spn)
        match = f"-m {PROTOCOL} -p {PROTOCOL} -d {ip} --dport {SERVICE_PORT}"
        service_rules.append(f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" {match} -j {svc}')
        per_service_chains.append(f":{svc} - [0:0]")
        per_service_rules.append(f'-A {svc} -m comment --comment "{spn} cluster IP" {match} '
                                 f"! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ")
        for n, endpoint in enumerate(endpoints):
            sep = sep_chain(spn, endpoint)
            pick = (f"-m statistic --mode random --probability {probability(len(endpoints) - n)} "
                    if n < len(endpoints) - 1 else "")
            per_service_rules.append(f"-A {svc} {comment(f'{spn} -> {endpoint}')}{pick}-j {sep}")
        for endpoint in endpoints:
            sep = sep_chain(spn, endpoint)
            per_service_chains.append(f":{sep} - [0:0]")
            per_service_rules.append(f"-A {sep} {comment(spn)}-s {endpoint.split(':')[0]} -j KUBE-MARK-MASQ")
            per_service_rules.append(f"-A {sep} {comment(spn)}-m {PROTOCOL} -p {PROTOCOL} "
                                     f"-j DNAT --to-destination {endpoint}")
    out += per_service_chains
    out += [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQUERADE_MARK}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQUERADE_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    out += service_rules
    out.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
               'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    out += per_service_rules
    out.append("COMMIT")
    return out


# --- nftables layout (pkg/proxy/nftables/proxier.go) ---

def nft_chain_base(name):
    """hashAndTruncate(): the name prefixed with 8 characters of its hash."""
    return hash_base32(name, 8) + "-" + name


def nft_service_chain(i):
    return "service-" + nft_chain_base(f"{NAMESPACE}/{service_name(i)}/{PROTOCOL}/{PORT_NAME}")


def nft_endpoint_chain(i, ip, port):
    return "endpoint-" + nft_chain_base(
        f"{NAMESPACE}/{service_name(i)}/{PROTOCOL}/{PORT_NAME}__{ip}/{port}")


NFT_BASE_RULES = """\
add table ip kube-proxy {{ comment "rules for kube-proxy" ; }}
add set ip kube-proxy cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}
add set ip kube-proxy nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}
add map ip kube-proxy firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }}
add map ip kube-proxy no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}
add map ip kube-proxy no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }}
add map ip kube-proxy service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}
add map ip kube-proxy service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}
add chain ip kube-proxy cluster-ips-check
add chain ip kube-proxy filter-prerouting-pre-dnat {{ type filter hook prerouting priority -110 ; }}
add chain ip kube-proxy filter-output-pre-dnat {{ type filter hook output priority -110 ; }}
add chain ip kube-proxy filter-forward {{ type filter hook forward priority 0 ; }}
add chain ip kube-proxy filter-input {{ type filter hook input priority 0 ; }}
add chain ip kube-proxy filter-output {{ type filter hook output priority 0 ; }}
add chain ip kube-proxy firewall-check
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy masquerading
add chain ip kube-proxy nat-output {{ type nat hook output priority -100 ; }}
add chain ip kube-proxy nat-postrouting {{ type nat hook postrouting priority 100 ; }}
add chain ip kube-proxy nat-prerouting {{ type nat hook prerouting priority -100 ; }}
add chain ip kube-proxy nodeport-endpoints-check
add chain ip kube-proxy reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}
add chain ip kube-proxy services
add chain ip kube-proxy service-endpoints-check
add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
add rule ip kube-proxy cluster-ips-check ip daddr {{ {service_cidr} }} drop comment "Drop traffic to unallocated ClusterIPs"
add rule ip kube-proxy filter-prerouting-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy mark-for-masquerade mark set mark or {mark}
add rule ip kube-proxy masquerading mark and {mark} == 0 return
add rule ip kube-proxy masquerading mark set mark xor {mark}
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
add element ip kube-proxy nodeport-ips {{ {node_ip} }}
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services"""


def nftables_rules(services, backends, node_ip):
    out = NFT_BASE_RULES.format(service_cidr=SERVICE_CIDR, mark=MASQUERADE_MARK,
                                node_ip=node_ip).split("\n")
    for i in range(services):
        ip, chain = cluster_ip(i), nft_service_chain(i)
        endpoint_chains = [nft_endpoint_chain(i, b, TARGET_PORT) for b in backends]
        # Endpoint chains first: nft refuses a verdict map naming a chain
        # that does not exist yet.
        for backend, endpoint_chain in zip(backends, endpoint_chains):
            out += [
                f"add chain ip kube-proxy {endpoint_chain}",
                f"add rule ip kube-proxy {endpoint_chain} ip saddr {backend} jump mark-for-masquerade",
                f"add rule ip kube-proxy {endpoint_chain} meta l4proto {PROTOCOL} dnat to {backend}:{TARGET_PORT}",
            ]
        vmap = " , ".join(f"{n} : goto {c}" for n, c in enumerate(endpoint_chains))
        out += [
            f"add chain ip kube-proxy {chain}",
            f"add rule ip kube-proxy {chain} ip daddr {ip} ip saddr != {CLUSTER_CIDR} jump mark-for-masquerade",
            f"add rule ip kube-proxy {chain} numgen random mod {len(backends)} vmap {{ {vmap} }}",
            f"add element ip kube-proxy cluster-ips {{ {ip} }}",
            f"add element ip kube-proxy service-ips {{ {ip} . {PROTOCOL} . {SERVICE_PORT} : goto {chain} }}",
        ]
    return out


# --- Sluice (configs/state/services.example.toml) ---

def sluice_services(services, backends, node_name):
    backend_list = ", ".join(f'{{ ip = "{b}", node = "{node_name}" }}' for b in backends)
    out = []
    for i in range(services):
        out += [
            "[[service]]",
            f'name = "{service_name(i)}"',
            f'namespace = "{NAMESPACE}"',
            f'cluster_ip = "{cluster_ip(i)}"',
            f'ports = [{{ name = "{PORT_NAME}", port = {SERVICE_PORT}, protocol = "{PROTOCOL}", '
            f"target_port = {TARGET_PORT} }}]",
            f"backends = [{backend_list}]",
            "",
        ]
    return out


def target_index(services, target):
    return {"first": 0, "middle": services // 2, "last": services - 1}[target]


def selftest():
    """The names kube-proxy's unit tests expect for ns1/svc1:p80 -> 10.180.0.1:80."""
    checks = [
        ("KUBE-SVC-", "KUBE-SVC-" + hash_base32("ns1/svc1:p80" + "tcp", 16), "KUBE-SVC-XPGD46QRK7WJZT7O"),
        ("KUBE-SEP-", "KUBE-SEP-" + hash_base32("ns1/svc1:p80" + "tcp" + "10.180.0.1:80", 16),
         "KUBE-SEP-SXIVWICOYRO3J4NJ"),
        ("service-", nft_chain_base("ns1/svc1/tcp/p80"), "ULMVA6XW-ns1/svc1/tcp/p80"),
        ("endpoint-", nft_chain_base("ns1/svc1/tcp/p80__10.180.0.1/80"),
         "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"),
    ]
    failed = [(what, got, want) for what, got, want in checks if got != want]
    for what, got, want in failed:
        print(f"kubeproxy_rules: {what} chain name {got}, kube-proxy has {want}", file=sys.stderr)
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("layout", choices=["iptables", "nftables", "sluice", "vip", "selftest"])
    parser.add_argument("--services", type=int, default=1)
    parser.add_argument("--backends", default="10.65.2.2,10.65.3.2,10.65.4.2",
                        help="comma-separated backend addresses (port %d)" % TARGET_PORT)
    parser.add_argument("--node-ip", default="10.64.0.1", help="the node address (nftables nodeport-ips)")
    parser.add_argument("--node-name", default="node", help="the node backends run on (sluice)")
    parser.add_argument("--target", choices=["first", "middle", "last"], default="last")
    args = parser.parse_args()
    if not 1 <= args.services <= MAX_SERVICES:
        parser.error(f"--services must be 1..{MAX_SERVICES}")
    backends = [b for b in args.backends.split(",") if b]
    if args.layout == "selftest":
        return selftest()
    if args.layout == "vip":
        lines = [cluster_ip(target_index(args.services, args.target))]
    elif args.layout == "iptables":
        lines = iptables_rules(args.services, backends)
    elif args.layout == "nftables":
        lines = nftables_rules(args.services, backends, args.node_ip)
    else:
        lines = sluice_services(args.services, backends, args.node_name)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
