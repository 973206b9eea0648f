#!/usr/bin/env python3
"""An ImageNet-shaped folder (1000 classes, 1,281 training and 50 validation images each) made of
hard links to the JPEGs of a smaller folder, so that 1.33 M entries cost seconds and no disk:
it measures the listing, startup time and memory of a folder of ImageNet's size.

    python3 make_link_folder.py SOURCE_FOLDER OUT
"""
import glob
import os
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_link_folder.py SOURCE_FOLDER OUT")
    srcs = sorted(glob.glob(os.path.join(sys.argv[1], "**", "*.jpg"), recursive=True))
    if not srcs:
        sys.exit(f"{sys.argv[1]}: no .jpg files")
    n = 0
    for split, per in (("train", 1281), ("val", 50)):
        for c in range(1000):
            d = os.path.join(sys.argv[2], split, f"n{c:08d}")
            os.makedirs(d, exist_ok=True)
            for i in range(per):
                path = os.path.join(d, f"n{c:08d}_{i}.JPEG")
                if not os.path.exists(path):  # rotating sources: ext4 allows 65,000 links to a file
                    os.link(srcs[n % len(srcs)], path)
                n += 1
    print(f"{n} entries in {sys.argv[2]}")


if __name__ == "__main__":
    main()
