#!/usr/bin/env python3
"""Writes the fuzzers' starting inputs into tests/fuzz/corpus/TARGET/seed-*: small valid files
of every format (made here, or taken from the repository's configs, fixtures and results), in
the layouts tests/fuzz/targets.cpp reads. scripts/fuzz.sh grows the corpus from them; run this
only to start a corpus afresh. Needs PIL (Debian python3-pil) for the image seeds.

    python3 tests/fuzz/make_seeds.py
"""
import gzip
import io
import json
import os
import struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def seed(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def idx(dims, payload):
    return struct.pack(">I", 0x0800 | len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_input(flags, labels, images):
    return bytes([flags]) + struct.pack("<H", len(labels)) + labels + images


def main():
    seed("safetensors", "f32", safetensors({"w": ("F32", [2, 3], struct.pack("<6f", *range(6)))}, {"format": "pt"}))
    seed("safetensors", "mixed", safetensors({"a": ("BF16", [4], b"\0\x3f" * 4), "b": ("I64", [1], struct.pack("<q", 7)),
                                              "c": ("F16", [0], b"")}))

    labels, images = idx([3], bytes([0, 1, 2])), idx([3, 2, 2], bytes(range(12)))
    seed("idx", "plain", idx_input(0, labels, images))
    seed("idx", "gz", idx_input(3, gzip.compress(labels, mtime=0), gzip.compress(images, mtime=0)))

    record = bytes([3]) + bytes(range(256)) * 12
    seed("cifar", "cifar10", bytes([0]) + record * 2)
    seed("cifar", "cifar100", bytes([1]) + (bytes([1]) + record) * 2)

    for name in ("quickstart", "fmnist_vit_tiny"):
        sets = "train.epochs=2\nmodel.attention={\"name\":\"gqa\",\"kv_heads\":2}\ndata.val_size=0.1\n"
        seed("run_config", name, sets + "----\n" + read(f"configs/{name}.json").decode())
    seed("run_config", "folder", "data.spec=\"folder:/nonexistent\"\ntrain.augment.auto_augment=rand-m9-mstd0.5-inc1\n"
         "----\n" + json.dumps({"model": {"preset": "vit-tiny", "image_size": 32, "num_classes": 10},
                                "train": {"mixup": 0.8, "augment": {"rrc": True, "re_prob": 0.25}}}))

    for path in ("experiments/attention_vs_params/spec.json", "experiments/tucker_vs_attention/spec_reduced.json"):
        spec = json.loads(read(path))
        spec.pop("base", None)  # a base config is a path relative to the spec: left out
        seed("sweep_spec", os.path.basename(os.path.dirname(path)), json.dumps(spec))

    for d in ("timm/cls_f32", "timm/dinov2_reg4_bf16", "timm/deit_distilled_f32", "timm/avgmax_reg1_f16",
              "timm/dinov2_giant_headless_f32", "timm/swiglu_args_bf16",
              "hf/vit_f32", "hf/deit_teacher_f32", "hf/vit_gray_nobias_bf16"):
        config = read(f"tests/fixtures/{d}/config.json").decode()
        pre = f"tests/fixtures/{d}/preprocessor_config.json"
        extra = "\n----\n" + read(pre).decode() if os.path.exists(os.path.join(ROOT, pre)) else ""
        seed("checkpoint_config", d.replace("/", "_"), config + extra)
    seed("checkpoint_config", "vitlab", json.dumps({"preset": "vit-tiny", "image_size": 28, "in_chans": 1,
                                                    "patch_size": 4, "num_classes": 10, "attention": "mha"}))

    result = read("experiments/attention_vs_params/results/runs/attention-gqa_kv_heads-2__seed-0/result.json").decode()
    sweep = json.loads(read("experiments/attention_vs_params/results/sweep.json"))
    sweep["runs"] = sweep["runs"][:2]
    seed("results", "sweep", result + "\n----\n" + json.dumps(sweep))

    from PIL import Image
    img = Image.frombytes("RGB", (12, 9), bytes((i * 7) % 256 for i in range(12 * 9 * 3)))
    for fmt, flags in (("JPEG", 0), ("PNG", 1), ("BMP", 0)):
        buf = io.BytesIO()
        (img.convert("L") if fmt == "PNG" else img).save(buf, fmt)
        seed("image", fmt.lower(), bytes([flags]) + buf.getvalue())
    seed("image", "jpeg_reduced", bytes([4]) + read("tests/fixtures/transforms/source.jpg"))


if __name__ == "__main__":
    main()
