#!/usr/bin/env python3
"""Summary of kubeproxy_bench.sh's measurements: kubeproxy_report.py RESULTS.tsv

RESULTS.tsv has a header line and one line per measurement:
round, mode, services, rate (connections/s), connect_p50, connect_p99,
response_p50, response_p99 (microseconds), failed.

Every figure is a median over the rounds. Ratios are taken within a round
(the cells of one round ran minutes apart at most, so they saw the same
machine) and the median of those per-round ratios is printed.
"""
import csv
import statistics
import sys

MODES = ["sluice", "iptables", "nftables"]
BASELINES = ["iptables", "nftables"]
# "Flat in the number of services": at the largest count within 10 % of the
# smallest (the same tolerance as sluice-nat-bench's new-flow target).
FLAT_TOLERANCE = 0.10
TARGET_METRICS = [("rate", "conn/s"), ("connect_p50", "connect p50"), ("response_p50", "response p50")]
METRICS = [("rate", "conn/s"), ("connect_p50", "connect p50"), ("connect_p99", "connect p99"),
           ("response_p50", "response p50"), ("response_p99", "response p99")]


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    cells = {}  # (mode, services) -> {round: row}
    for row in rows:
        for key, _ in METRICS:
            row[key] = float(row[key])
        row["failed"] = int(row["failed"])
        cells.setdefault((row["mode"], int(row["services"])), {})[int(row["round"])] = row
    return cells


def median_of(cell, key):
    return statistics.median(row[key] for row in cell.values())


def ratio(cells, a, b, key):
    """Median over rounds of cell a's value / cell b's value in the same round."""
    rounds = sorted(set(cells.get(a, {})) & set(cells.get(b, {})))
    values = [cells[a][r][key] / cells[b][r][key] for r in rounds if cells[b][r][key] > 0]
    return statistics.median(values) if values else None


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def verdict(ok):
    return "PASS" if ok else "MISS"


def main():
    cells = load(sys.argv[1])
    counts = sorted({services for _, services in cells})
    modes = [m for m in MODES if any((m, n) in cells for n in counts)]

    print("\nPer mode and number of services (median over rounds; latencies in microseconds)")
    print(f"{'services':>8}  {'mode':<9} {'conn/s':>8} {'connect p50':>12} {'p99':>8} "
          f"{'response p50':>13} {'p99':>8} {'failed':>7}")
    for n in counts:
        for mode in modes:
            cell = cells.get((mode, n))
            if not cell:
                continue
            print(f"{n:>8}  {mode:<9} {median_of(cell, 'rate'):>8.0f} "
                  f"{median_of(cell, 'connect_p50'):>12.1f} {median_of(cell, 'connect_p99'):>8.1f} "
                  f"{median_of(cell, 'response_p50'):>13.1f} {median_of(cell, 'response_p99'):>8.1f} "
                  f"{sum(r['failed'] for r in cell.values()):>7}")

    ratio_header = "".join(f" {label:>13}" for _, label in METRICS)

    def ratio_row(a, b):
        return "".join(f" {fmt_ratio(ratio(cells, a, b, key)):>13}" for key, _ in METRICS)

    if "sluice" in modes and any(b in modes for b in BASELINES):
        print("\nSluice / kube-proxy (median of per-round ratios; conn/s above 1 and latencies "
              "below 1 mean Sluice is ahead)")
        print(f"{'services':>8}  {'against':<9}{ratio_header}")
        for n in counts:
            for baseline in BASELINES:
                if (baseline, n) in cells and ("sluice", n) in cells:
                    print(f"{n:>8}  {baseline:<9}{ratio_row(('sluice', n), (baseline, n))}")

    if len(counts) > 1:
        low, high = counts[0], counts[-1]
        print(f"\nFlatness: {high} services / {low}, same mode (median of per-round ratios; "
              "1.00x = the number of services costs nothing)")
        print(f"{'mode':<9}{ratio_header}")
        for mode in modes:
            print(f"{mode:<9}{ratio_row((mode, high), (mode, low))}")

    if "sluice" not in modes or len(counts) < 2:
        return 0
    print("\nTargets (conn/s is wall-clock: on a shared machine it also measures the CPU time "
          "other work took; the latency medians are the steadier figures)")
    # Each target is judged on the rate and on the latency medians.
    def judged(a, b, rate_ok, latency_ok):
        values = {key: ratio(cells, a, b, key) for key, _ in TARGET_METRICS}
        if None in values.values():
            return None
        return ", ".join(f"{label} {values[key]:.2f}x "
                         f"{verdict((rate_ok if key == 'rate' else latency_ok)(values[key]))}"
                         for key, label in TARGET_METRICS)

    flat = judged(("sluice", high), ("sluice", low), lambda r: r >= 1 - FLAT_TOLERANCE,
                  lambda r: r <= 1 + FLAT_TOLERANCE)
    if flat:
        print(f"  flat in the number of services (Sluice at {high} within {FLAT_TOLERANCE:.0%} of {low}): {flat}")
    for baseline in BASELINES:
        ahead = judged(("sluice", high), (baseline, high), lambda r: r > 1, lambda r: r < 1)
        if ahead:
            print(f"  ahead of {baseline} at {high} services: {ahead}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
