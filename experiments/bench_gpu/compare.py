"""Side-by-side table of experiments/bench_gpu: vitlab (vit_bench JSON) against timm eager and
compiled (timm_bench.py JSON), row by row in the configs' order. Usage: compare.py OUT_DIR"""
import json
import os
import sys


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def main():
    out = sys.argv[1]
    v, e, c = (load(os.path.join(out, f)) for f in ("vitlab.json", "timm_eager.json", "timm_compile.json"))
    if v is None:
        sys.exit(f"{out}/vitlab.json: missing (run the vitlab stage)")
    device = v["host"]["device_name"]
    print(f"Device: {device}; vitlab {v['git_commit']} on LibTorch {v['host']['libtorch']}"
          + (f"; timm {e['timm']} on torch {e['torch']}" if e else "") + "\n")
    print("| config | batch | params vitlab / timm | precision | train img/s vitlab | timm eager | timm compiled |"
          " vs eager | vs compiled | MFU | infer img/s vitlab | timm eager | timm compiled | vs eager | vs compiled |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    def rate(x, phase):
        return x[phase]["images_per_s"] if x else None

    def fmt(x):
        return f"{x:,.0f}" if x else "-"

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "-"

    for i, r in enumerate(v["results"]):
        te = e["results"][i] if e else None
        tc = c["results"][i] if c else None
        timm = te or tc or {}
        name = timm.get("name", os.path.basename(r["config"]))
        timm_params = f"{timm['params'] / 1e6:.2f}M" if timm else "-"
        mfu = r["train"].get("mfu")
        cells = [name, str(r["batch_size"]), f"{r['params']['total'] / 1e6:.2f}M / {timm_params}",
                 r.get("precision", "?")]
        for phase in ("train", "infer"):
            ours = rate(r, phase)
            cells += [fmt(ours), fmt(rate(te, phase)), fmt(rate(tc, phase)), ratio(ours, rate(te, phase)),
                      ratio(ours, rate(tc, phase))]
            if phase == "train":
                cells.append(f"{100 * mfu:.1f}%" if mfu is not None else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
