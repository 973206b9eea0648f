#!/usr/bin/env python3
"""The reference loader: torchvision's ImageFolder + torch's DataLoader (pinned memory, batches
copied to the GPU when there is one), timed over N batches after a warm-up, as vit_bench
--pipeline times vitlab's. --transform picks the training transform:
  rrc   torchvision RandomResizedCrop(size) + RandomHorizontalFlip + ToTensor + Normalize, the
        same work as vitlab's train.augment {rrc, flip} (Debian's python3-torchvision here);
  timm  timm's create_transform(size, is_training=True, auto_augment=AA, re_prob=0.25).
Prints one JSON line: {"transform", "workers", "batch_size", "images_per_s", ...}.
"""
import argparse
import json
import time

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="the split's folder (root/<class>/<image>)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--transform", choices=["rrc", "timm"], default="rrc")
    p.add_argument("--auto-augment", default="rand-m9-mstd0.5-inc1")
    a = p.parse_args()
    if a.transform == "timm":
        from timm.data import create_transform
        tf = create_transform(a.size, is_training=True, auto_augment=a.auto_augment, re_prob=0.25)
    else:
        tf = T.Compose([T.RandomResizedCrop(a.size), T.RandomHorizontalFlip(), T.ToTensor(),
                        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ds = ImageFolder(a.root, transform=tf)
    cuda = torch.cuda.is_available()
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                                     pin_memory=cuda, drop_last=True, persistent_workers=False)
    it = iter(dl)
    for _ in range(a.warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(a.batches):
        x, y = next(it)
        if cuda:
            x = x.cuda(non_blocking=True)
            y = y.cuda(non_blocking=True)
            torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    print(json.dumps({"loader": "torch DataLoader + torchvision ImageFolder", "transform": a.transform,
                      "auto_augment": a.auto_augment if a.transform == "timm" else None, "workers": a.workers,
                      "batch_size": a.batch_size, "batches": a.batches, "seconds": secs,
                      "images_per_s": a.batches * a.batch_size / secs, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
