#!/usr/bin/env python3
"""Writes Fashion-MNIST (the Debian package's IDX .gz files) as a class-sorted image folder,
OUT/train/<class>/<n>.png and OUT/test/<class>/<n>.png, the layout of ImageNet-style data.
vitlab trains on it with --data folder:OUT: the same images as --data fashion-mnist, read
through the streamed folder pipeline. Standard library only (zlib writes the PNGs).

    python3 datasets/fashion_mnist_folder.py data/fashion-mnist-png
"""
import gzip
import os
import struct
import sys
import zlib

SRC = "/usr/share/datasets/fashion-mnist"
# Folder names sort in label order, so the folder's class indices are the IDX labels.
CLASSES = ["0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
           "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x801:
        return n, data[8:], None
    rows, cols = struct.unpack(">II", data[8:16])
    return n, data[16:], (rows, cols)


def png_grey(pixels, rows, cols):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + pixels[r * cols:(r + 1) * cols] for r in range(rows))  # filter 0 per row
    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fashion_mnist_folder.py OUT_DIR")
    out = sys.argv[1]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        n, images, (rows, cols) = read_idx(f"{SRC}/{prefix}-images-idx3-ubyte.gz")
        _, labels, _ = read_idx(f"{SRC}/{prefix}-labels-idx1-ubyte.gz")
        for c in CLASSES:
            os.makedirs(os.path.join(out, split, c), exist_ok=True)
        size = rows * cols
        for i in range(n):
            path = os.path.join(out, split, CLASSES[labels[i]], f"{i:05d}.png")
            with open(path + ".tmp", "wb") as f:
                f.write(png_grey(images[i * size:(i + 1) * size], rows, cols))
            os.replace(path + ".tmp", path)
        print(f"{split}: {n} images in {out}/{split}")


if __name__ == "__main__":
    main()
