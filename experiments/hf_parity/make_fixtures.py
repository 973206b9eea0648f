"""Parity fixtures for Hugging Face transformers checkpoints: ViTForImageClassification and
DeiTForImageClassificationWithTeacher with random weights at small sizes, saved as the hub ships
them (config.json, model.safetensors, preprocessor_config.json), with inputs, transformers'
logits and the image processor's pixels, for vitlab's HfParity tests (tests/test_hf.cpp). Runs
where transformers is installed (the GPU machine).

    python3 experiments/hf_parity/make_fixtures.py OUT_DIR [--set tiny|large]

Each case is a folder:
  config.json, model.safetensors  what save_pretrained writes (transformers' key names: separate
                                  query / key / value, vit. / deit. prefixes, layernorm_before /
                                  _after), weights in the case's dtype
  preprocessor_config.json        the image processor (resize, crop, mean, std, resample)
  expected.safetensors            inputs (B, C, S, S) normalised, logits (B, classes) from
                                  transformers in float64 on the stored weights; pixels (n, C, S, S)
                                  uint8: the processor's resize and crop of images/x/*.png
  images/x/*.png                  a few images of different sizes
  fixture.json                    what made it (transformers and torch versions, the case)
The tiny set is committed under tests/fixtures/hf/; the large set (ViT-S/16 and DeiT-S/16 shapes)
is checked on the GPU machine only.
"""
import argparse
import json
import math
import pathlib
import traceback

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import (DeiTConfig, DeiTForImageClassification, DeiTForImageClassificationWithTeacher,
                          DeiTImageProcessor, ViTConfig, ViTForImageClassification, ViTImageProcessor)

BILINEAR, BICUBIC = 2, 3  # PIL's resample codes, as preprocessor_config.json stores them

# name: (model class, config class, config args, processor class, processor args, stored dtype)
TINY = {
    "vit_f32": (ViTForImageClassification, ViTConfig,
                dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     image_size=32, patch_size=8, num_channels=3, qkv_bias=True, num_labels=4),
                ViTImageProcessor,
                dict(size={"height": 32, "width": 32}, resample=BILINEAR, image_mean=[0.5, 0.5, 0.5],
                     image_std=[0.5, 0.5, 0.5]),
                torch.float32),
    "deit_teacher_f32": (DeiTForImageClassificationWithTeacher, DeiTConfig,
                         dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                              image_size=32, patch_size=8, num_channels=3, qkv_bias=True, num_labels=5),
                         DeiTImageProcessor,
                         dict(size={"height": 36, "width": 36}, crop_size={"height": 32, "width": 32},
                              resample=BICUBIC),
                         torch.float32),
    "vit_gray_nobias_bf16": (ViTForImageClassification, ViTConfig,
                             dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40,
                                  image_size=28, patch_size=7, num_channels=1, qkv_bias=False, num_labels=3,
                                  layer_norm_eps=1e-6),
                             ViTImageProcessor,
                             dict(size={"height": 28, "width": 28}, resample=BILINEAR, image_mean=[0.3],
                                  image_std=[0.35]),
                             torch.bfloat16),
    "deit_plain_f16": (DeiTForImageClassification, DeiTConfig,
                       dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            image_size=32, patch_size=8, num_channels=3, qkv_bias=True, num_labels=3),
                       DeiTImageProcessor,
                       dict(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32},
                            resample=BICUBIC),
                       torch.float16),
}
LARGE = {
    "vit_small_patch16_224": (ViTForImageClassification, ViTConfig,
                              dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                   intermediate_size=1536, image_size=224, patch_size=16, num_labels=1000),
                              ViTImageProcessor, dict(), torch.float32),
    "deit_small_distilled_patch16_224": (DeiTForImageClassificationWithTeacher, DeiTConfig,
                                         dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                              intermediate_size=1536, image_size=224, patch_size=16,
                                              num_labels=1000),
                                         DeiTImageProcessor, dict(), torch.bfloat16),
}


def randomise(model, gen):
    """Every parameter random at a scale that keeps activations O(1) (zero biases and unit norms
    would hide a transposed bias or a swapped norm)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if "layernorm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * r
            elif name.endswith("bias"):
                v = 0.1 * r
            elif name.endswith(("cls_token", "distillation_token", "position_embeddings")):
                v = 0.5 * r
            else:  # (out, in...) weights: 1 / sqrt(fan in)
                v = r / math.sqrt(p[0].numel())
            p.copy_(v.to(p.dtype))


def make_images(folder, gen, sizes, channels):
    """Smooth gradients plus noise, PNG (lossless, so decoding is exact everywhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (w, h) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1) * 200
        noise = torch.randn((h, w, 3), generator=gen, dtype=torch.float64).numpy() * 25
        img = np.clip(base + noise + 20, 0, 255).astype(np.uint8)
        im = Image.fromarray(img, "RGB")
        if channels == 1:
            im = im.convert("L")
        path = folder / f"{k}.png"
        im.save(path)
        paths.append(path)
    return paths


def make_case(out, name, case, seed, with_images):
    model_cls, config_cls, config_args, proc_cls, proc_args, dtype = case
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    args = dict(config_args)
    labels = {i: f"class_{i}" for i in range(args.pop("num_labels"))}
    config = config_cls(**args, id2label=labels, label2id={v: k for k, v in labels.items()})
    model = model_cls(config).eval()
    randomise(model, gen)
    model.to(dtype).save_pretrained(d, safe_serialization=True)
    proc = proc_cls(**proc_args)
    proc.save_pretrained(d)

    # transformers' logits in float64 from the weights as stored (what vitlab reads back), loaded
    # the way users load them: from_pretrained maps the file's key names (transformers 5 renames
    # its modules in memory but writes and reads the hub's names).
    ref, info = model_cls.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ref = ref.eval().double()
    chans, size = config.num_channels, config.image_size
    x = torch.randn((2, chans, size, size), generator=gen, dtype=torch.float64).float()
    with torch.no_grad():
        logits = ref(pixel_values=x.double()).logits
    expected = {"inputs": x, "logits": logits}
    if with_images:
        paths = make_images(d / "images" / "x", gen, [(45, 37), (64, 64), (30, 52)], chans)
        pixels = []
        for p in sorted(paths):
            img = Image.open(p)
            img = img.convert("L" if chans == 1 else "RGB")
            # The processor's resize and crop alone: rescaling and normalising are vitlab's model.
            v = proc(images=img, return_tensors="np", do_rescale=False, do_normalize=False)["pixel_values"][0]
            v = v[None] if v.ndim == 2 else v  # (C, S, S)
            pixels.append(torch.from_numpy(np.round(v).astype(np.uint8)))
        expected["pixels"] = torch.stack(pixels).contiguous()
    save_file({k: v.contiguous() for k, v in expected.items()}, str(d / "expected.safetensors"))
    (d / "fixture.json").write_text(json.dumps({
        "made_by": "experiments/hf_parity/make_fixtures.py", "transformers": transformers.__version__,
        "torch": torch.__version__, "model_class": model_cls.__name__, "config": config_args,
        "processor": proc_cls.__name__, "stored_dtype": str(dtype), "seed": seed}, indent=2) + "\n")
    print(f"{name}: {sum(p.stat().st_size for p in d.rglob('*') if p.is_file()) / 1024:.0f} KB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--set", choices=("tiny", "large"), default="tiny")
    a = ap.parse_args()
    cases = TINY if a.set == "tiny" else LARGE
    failed = []
    for i, (name, case) in enumerate(cases.items()):
        try:
            make_case(a.out, name, case, seed=2000 + i, with_images=a.set == "tiny")
        except Exception:  # the other cases still get made; the exit status says one failed
            traceback.print_exc()
            failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
