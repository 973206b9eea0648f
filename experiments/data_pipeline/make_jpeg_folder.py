#!/usr/bin/env python3
"""A folder of ImageNet-sized JPEGs for throughput measurements: OUT/train/<class>/<n>.jpg and
OUT/val/<class>/<n>.jpg, sides 400-640 px (--sides MIN MAX), quality 90, 10 classes, about 52 KB each (smooth
colour fields plus grain, which JPEG compresses about as it does photographs). Seeded: the same
arguments write the same files. Needs PIL (Debian python3-pil; on the GPU machine, pillow).

    python3 make_jpeg_folder.py OUT --train 20000 --val 1000 [--sides 400 640] [--jobs N]
"""
import argparse
import os
import random
from multiprocessing import Pool

from PIL import Image

CLASSES = 10


def write(job):
    path, seed, lo, hi = job
    rng = random.Random(seed)
    w, h = rng.randint(lo, hi), rng.randint(lo, hi)
    field = Image.frombytes("RGB", (8, 6), bytes(rng.randrange(256) for _ in range(8 * 6 * 3)))
    img = field.resize((w, h), Image.BICUBIC)
    detail = Image.frombytes("RGB", (w // 4, h // 4), bytes(rng.randrange(256) for _ in range(w // 4 * (h // 4) * 3)))
    img = Image.blend(img, detail.resize((w, h), Image.BILINEAR), 0.15)
    grain = Image.effect_noise((w, h), 24).convert("RGB")
    img = Image.blend(img, grain, 0.05)
    img.save(path + ".tmp", "JPEG", quality=90)
    os.replace(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--val", type=int, default=1000)
    p.add_argument("--sides", type=int, nargs=2, default=(400, 640), metavar=("MIN", "MAX"))
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    a = p.parse_args()
    jobs = []
    for split, n in (("train", a.train), ("val", a.val)):
        for c in range(CLASSES):
            os.makedirs(os.path.join(a.out, split, f"class{c}"), exist_ok=True)
        for i in range(n):
            seed = (0 if split == "train" else 1 << 30) + i
            jobs.append((os.path.join(a.out, split, f"class{i % CLASSES}", f"{i:07d}.jpg"), seed, *a.sides))
    jobs = [j for j in jobs if not os.path.exists(j[0])]  # a rerun finishes what is missing
    with Pool(a.jobs) as pool:
        pool.map(write, jobs, chunksize=64)
    sizes = [os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(a.out) for f in fs]
    print(f"{len(sizes)} JPEGs in {a.out}, mean {sum(sizes) / max(1, len(sizes)) / 1e3:.1f} KB")


if __name__ == "__main__":
    main()
