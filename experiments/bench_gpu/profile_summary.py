"""Summarises Nsight Compute CSV logs (gpu__time_duration.sum per kernel) of a few identical
steps: keeps the last step (the shortest kernel-name sequence of at least 50 kernels that the
log ends with twice in a row), groups its kernels by kind and by name, and prints the groups side by side.

Usage: python3 profile_summary.py VITLAB.csv TIMM.csv"""
import csv
import sys
from collections import defaultdict

KINDS = [  # first match wins
    ("attention", ("flash", "fmha", "attention", "sdpa", "dot_do_o", "convert_dq")),  # with cuDNN's helpers
    ("conv", ("conv", "wgrad", "dgrad", "nchw", "nhwc")),
    ("matmul", ("gemm", "xmma", "cutlass", "nvjet", "splitk", "cublas")),
    ("layer norm", ("layer_norm", "layernorm")),
    ("softmax / loss", ("softmax", "nll", "cross_entropy", "log_softmax")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("reduction", ("reduce", "column_sum")),
    ("copy / cast", ("copy", "cast", "cat", "to_copy", "unrolled_elementwise")),
]


def kernels(path):
    rows = []
    with open(path) as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        if r.get("Metric Name") == "gpu__time_duration.sum":
            scale = {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}[r["Metric Unit"]]
            rows.append((r["Kernel Name"], float(r["Metric Value"].replace(",", "")) * scale))  # ns
    return rows


def last_step(rows, shortest=50):
    # A step is longer than any run that repeats inside it (AdamW's chunks, one block's kernels).
    names = [n for n, _ in rows]
    for p in range(shortest, len(names) // 2 + 1):
        if names[-p:] == names[-2 * p:-p]:
            return rows[-p:]
    return rows


def kind(name):
    low = name.lower()
    for k, keys in KINDS:
        if any(key in low for key in keys):
            return k
    return "elementwise / other"


def summarise(rows):
    by_kind, by_name = defaultdict(lambda: [0.0, 0]), defaultdict(lambda: [0.0, 0])
    for n, t in rows:
        for table, key in ((by_kind, kind(n)), (by_name, n[:90])):
            table[key][0] += t
            table[key][1] += 1
    return by_kind, by_name


def main():
    sides = [("vitlab", sys.argv[1]), ("timm", sys.argv[2])]
    steps = {s: last_step(kernels(p)) for s, p in sides}
    summaries = {s: summarise(r) for s, r in steps.items()}
    total = {s: sum(t for _, t in r) / 1e6 for s, r in steps.items()}
    print("| kind | " + " | ".join(f"{s} ms (kernels)" for s, _ in sides) + " |")
    print("|---|" + "---:|" * len(sides))
    kinds = sorted({k for s in summaries.values() for k in s[0]}, key=lambda k: -summaries["vitlab"][0][k][0])
    for k in kinds:
        cells = [f"{summaries[s][0][k][0] / 1e6:.3f} ({summaries[s][0][k][1]})" for s, _ in sides]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("| **one step** | " + " | ".join(f"**{total[s]:.3f}** ({len(steps[s])})" for s, _ in sides) + " |")
    for s, _ in sides:
        print(f"\n{s}: the 15 largest kernels of one step\n")
        print("| ms | count | kernel |\n|---:|---:|---|")
        for n, (t, c) in sorted(summaries[s][1].items(), key=lambda kv: -kv[1][0])[:15]:
            print(f"| {t / 1e6:.3f} | {c} | `{n}` |")


if __name__ == "__main__":
    main()
