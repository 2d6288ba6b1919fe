#!/usr/bin/env python3
"""sluice-bench of two builds, run alternately, compared case by case.

    sudo tools/bench/before_after.py <before sluice-bench> <after sluice-bench> [pairs] [rounds]

Runs the two binaries one after the other, `pairs` times (default 5), each
with --json --rounds <rounds> (default 5), and prints per main case the
median ns/packet of each build and the median over pairs of the ratio
after / before of the case's cost relative to the same run's no-op program
(ratio_vs_noop): normalising by a baseline measured in the same run removes
most of what a busy machine adds to both. Cases only one build has are
listed without a ratio. Needs root (BPF_PROG_TEST_RUN).
"""
import json
import statistics
import subprocess
import sys


def run(binary, rounds):
    out = subprocess.run([binary, "--json", "--rounds", str(rounds)], check=True,
                         capture_output=True, text=True).stdout
    return {c["name"]: c for c in json.loads(out)["cases"] if c["group"] == "main"}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    before, after = sys.argv[1], sys.argv[2]
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    runs = {"before": [], "after": []}
    for i in range(pairs):
        # Alternate which goes first so neither always runs on a cooler machine.
        order = [("before", before), ("after", after)]
        if i % 2:
            order.reverse()
        for label, binary in order:
            runs[label].append(run(binary, rounds))
    names = list(runs["after"][0])
    names += [n for n in runs["before"][0] if n not in names]
    print(f"# sluice-bench before/after: {pairs} pairs x {rounds} rounds; before={before} after={after}")
    print(f"{'case':<22} {'before ns':>10} {'after ns':>10} {'before/noop':>12} {'after/noop':>11} "
          f"{'after/before':>13}")
    for name in names:
        have = [label for label in runs if name in runs[label][0]]

        def median_of(label, field):
            return statistics.median(r[name][field] for r in runs[label])

        cells = {label: (median_of(label, "ns_per_packet"), median_of(label, "ratio_vs_noop"))
                 for label in have}
        ratio = "-"
        if len(have) == 2:
            ratio = "%.3fx" % statistics.median(
                a[name]["ratio_vs_noop"] / b[name]["ratio_vs_noop"]
                for a, b in zip(runs["after"], runs["before"]))

        def cell(label, i, fmt):
            return fmt % cells[label][i] if label in cells else "-"

        print(f"{name:<22} {cell('before', 0, '%.0f'):>10} {cell('after', 0, '%.0f'):>10} "
              f"{cell('before', 1, '%.3f'):>12} {cell('after', 1, '%.3f'):>11} {ratio:>13}")
    print("(after/before: median over pairs of the ratio of the two runs' cost relative to no-op)")


if __name__ == "__main__":
    main()
