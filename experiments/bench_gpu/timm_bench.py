"""timm's side of experiments/bench_gpu: train and inference img/s of the four reference ViT
configs with bf16 autocast, TF32, fused AdamW and synthetic data resident on the GPU, eager and
torch.compile'd, timed like vit_bench (median of timed windows after a warm-up).

Usage: python3 timm_bench.py --mode eager|compile [--out FILE.json] [--only NAME] [--phase train|infer]
Kept in the repository only for this comparison; vitlab itself has no Python."""
import argparse
import json
import statistics
import time

import timm
import torch

CONFIGS = [  # name, timm model, image size, channels, patch, classes, batch
    ("vit_tiny p4 28x28x1", "vit_tiny_patch16_224", 28, 1, 4, 10, 512),
    ("vit_small p4 28x28x1", "vit_small_patch16_224", 28, 1, 4, 10, 512),
    ("vit_tiny p16 224x224x3", "vit_tiny_patch16_224", 224, 3, 16, 1000, 256),
    ("vit_small p16 224x224x3", "vit_small_patch16_224", 224, 3, 16, 1000, 256),
]


def timed(step, warmup, windows, window_steps, batch):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(window_steps):
            step()
        torch.cuda.synchronize()
        rates.append(window_steps * batch / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def bench(name, arch, size, chans, patch, classes, batch, mode, args):
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, img_size=size, in_chans=chans, patch_size=patch,
                              num_classes=classes).cuda()
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(batch, chans, size, size, device="cuda")
    y = torch.randint(0, classes, (batch,), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    fwd = torch.compile(model) if mode == "compile" else model

    def train_step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            fwd(x)

    model.train()
    torch.cuda.reset_peak_memory_stats()
    train, train_windows, train_peak = 0.0, [], 0
    if args.phase in ("both", "train"):
        train, train_windows = timed(train_step, args.warmup, args.windows, args.window_steps, batch)
        train_peak = torch.cuda.max_memory_allocated()
    model.eval()
    infer_model = torch.compile(model) if mode == "compile" else model
    fwd = infer_model
    torch.cuda.reset_peak_memory_stats()
    infer, infer_windows = 0.0, []
    if args.phase in ("both", "infer"):
        infer, infer_windows = timed(infer_step, args.warmup, args.windows, args.window_steps, batch)
    return {"name": name, "timm_model": arch, "mode": mode, "params": params, "batch_size": batch,
            "train": {"images_per_s": train, "windows": train_windows, "peak_bytes": train_peak},
            "infer": {"images_per_s": infer, "windows": infer_windows,
                      "peak_bytes": torch.cuda.max_memory_allocated()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["eager", "compile"], required=True)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window-steps", type=int, default=20)
    p.add_argument("--out")
    p.add_argument("--only", help="run only the config of this name (e.g. 'vit_small p16 224x224x3')")
    p.add_argument("--phase", choices=["both", "train", "infer"], default="both")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    results = []
    for c in CONFIGS:
        if args.only and c[0] != args.only:
            continue
        r = bench(*c, args.mode, args)
        results.append(r)
        print(f"timm {args.mode:7s} {r['name']:26s} {r['params'] / 1e6:5.1f}M  train {r['train']['images_per_s']:9.0f} img/s"
              f"  infer {r['infer']['images_per_s']:9.0f} img/s", flush=True)
    out = {"schema": "vitlab.timm_bench/1", "torch": torch.__version__, "timm": timm.__version__,
           "device": torch.cuda.get_device_name(), "options": vars(args), "results": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
