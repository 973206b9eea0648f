"""Parity fixtures: timm ViTs with random weights, saved as the Hugging Face hub ships them
(model.safetensors + timm's config.json), with inputs and timm's logits, for vitlab's
TimmParity tests (tests/test_timm.cpp). Runs where timm is installed (the GPU machine).

    python3 experiments/timm_parity/make_fixtures.py OUT_DIR [--set tiny|large]

Each case is a folder:
  config.json, model.safetensors   timm's config (architecture, global_pool, model_args,
                                   pretrained_cfg) and weights in the case's dtype
  expected.safetensors             inputs (B, C, S, S) normalised, logits (B, classes; the
                                   features for num_classes 0) from timm in float64 on the
                                   stored weights; with a resampled size R:
                                   inputs_resampled (B, C, R, R) and logits_resampled, timm's
                                   model at img_size R loaded through its checkpoint filter
                                   (position embeddings resampled bicubic, antialiased);
                                   with images: pixels (n, C, S, S) uint8, timm's evaluation
                                   transform (resize by crop_pct, centre crop) of images/
  images/x/*.png                   a few images of different sizes (only some cases)
  fixture.json                     what made it (timm and torch versions, the case)
The tiny set (a few hundred KB) is committed under tests/fixtures/timm/; the large set holds
real timm sizes and is checked on the GPU machine only.
"""
import argparse
import json
import math
import pathlib
import traceback

import numpy as np
import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from timm.data import create_transform, resolve_data_config
from timm.layers import SwiGLUPacked
from timm.models.vision_transformer import checkpoint_filter_fn

# name: (architecture, model_args, pretrained_cfg overlay, stored dtype, resampled size, images)
TINY = {
    "cls_f32": ("vit_tiny_patch16_224",
                dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                     num_classes=5, qkv_bias=True, global_pool="token"),
                dict(crop_pct=0.875, interpolation="bicubic", mean=(0.4, 0.45, 0.5), std=(0.25, 0.2, 0.3)),
                torch.float32, 48, True),
    "avg_ls_bf16": ("vit_small_patch16_224",
                    dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0,
                         num_classes=4, qkv_bias=False, class_token=True, global_pool="avg", init_values=0.1),
                    dict(crop_pct=0.9, interpolation="bicubic"),
                    torch.bfloat16, 24, False),
    "avg_noclass_f16": ("vit_base_patch16_224",
                        dict(img_size=28, patch_size=7, in_chans=1, embed_dim=24, depth=2, num_heads=3,
                             mlp_ratio=2.0, num_classes=3, class_token=False, global_pool="avg", fc_norm=False),
                        dict(crop_pct=1.0, interpolation="bilinear", mean=(0.3,), std=(0.35,)),
                        torch.float16, None, False),
    # timm's newer layouts (issue 22): register tokens outside the position table with average
    # pooling over the patches alone (vit_*_reg4_gap_*), a DINOv2-style model (patch 14,
    # LayerScale, a class token and registers, positions resampled to another size), DeiT's
    # distilled token and second head (logits averaged at inference), avgmax pooling.
    "reg4_gap_f32": ("vit_base_patch16_224",
                     dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                          num_classes=4, class_token=False, no_embed_class=True, reg_tokens=4, global_pool="avg"),
                     dict(crop_pct=0.95, interpolation="bicubic"),
                     torch.float32, 48, False),
    "dinov2_reg4_bf16": ("vit_small_patch14_reg4_dinov2",
                         dict(img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                              num_classes=3, init_values=0.1, reg_tokens=4, no_embed_class=True),
                         dict(crop_pct=1.0, interpolation="bicubic"),
                         torch.bfloat16, 42, True),
    "deit_distilled_f32": ("deit_tiny_distilled_patch16_224",
                           dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                                num_classes=5),
                           dict(crop_pct=0.875, interpolation="bicubic"),
                           torch.float32, None, False),
    "avgmax_reg1_f16": ("vit_tiny_patch16_224",
                        dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                             num_classes=3, reg_tokens=1, global_pool="avgmax", init_values=0.1),
                        dict(crop_pct=0.9, interpolation="bilinear"),
                        torch.float16, None, False),
    # Gated MLPs (timm's SwiGLUPacked with SiLU): DINOv2's giant layout by name, here headless
    # as DINOv2 ships (num_classes 0: the pooled features are the output), and by model_args,
    # as the pathology ViTs built on it pass them to timm.create_model.
    "dinov2_giant_headless_f32": ("vit_giant_patch14_dinov2",
                                  dict(img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=2,
                                       mlp_ratio=2.0, num_classes=0),
                                  dict(crop_pct=1.0, interpolation="bicubic"),
                                  torch.float32, 42, False),
    "swiglu_args_bf16": ("vit_base_patch16_224",
                         dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=3.0,
                              num_classes=4, reg_tokens=2, init_values=0.1, mlp_layer=SwiGLUPacked,
                              act_layer=torch.nn.SiLU),
                         dict(crop_pct=0.9, interpolation="bicubic"),
                         torch.bfloat16, None, False),
    # GELU's tanh approximation (act_layer 'gelu_tanh', as SigLIP's ViTs), named by timm's string.
    "gelu_tanh_f32": ("vit_base_patch16_224",
                      dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                           num_classes=3, act_layer="gelu_tanh"),
                      dict(crop_pct=1.0, interpolation="bicubic"),
                      torch.float32, None, False),
}
LARGE = {
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", dict(num_classes=1000), dict(), torch.float32, 384, False),
    "vit_small_patch32_224_avg": ("vit_small_patch32_224", dict(global_pool="avg", class_token=True, fc_norm=True),
                                  dict(), torch.bfloat16, 288, False),
    "vit_base_patch16_224_ls": ("vit_base_patch16_224", dict(init_values=1e-1, num_classes=100), dict(),
                                torch.float16, None, False),
    "vit_small_patch16_384": ("vit_small_patch16_384", dict(num_classes=10), dict(), torch.bfloat16, 224, False),
    # Issue 22's families at their real sizes: DINOv2 with registers (518, resampled to 224),
    # distilled DeiT, registers with average pooling, and a gated DINOv2-S backbone without a
    # classifier (the giant's MLP at the small width: the giant itself is 4.4 GB in f32).
    "vit_small_patch14_reg4_dinov2": ("vit_small_patch14_reg4_dinov2", dict(num_classes=10), dict(), torch.bfloat16,
                                      224, False),
    "deit_small_distilled_patch16_224": ("deit_small_distilled_patch16_224", dict(num_classes=100), dict(),
                                         torch.float32, None, False),
    "vit_base_patch16_reg4_gap_256": ("vit_base_patch16_reg4_gap_256", dict(num_classes=10), dict(), torch.float16,
                                      None, False),
    "vit_small_patch14_dinov2_swiglu": ("vit_small_patch14_dinov2",
                                        dict(num_classes=0, mlp_ratio=2.66667 * 2, mlp_layer=SwiGLUPacked,
                                             act_layer=torch.nn.SiLU),
                                        dict(), torch.float32, None, False),
}


def randomise(model, gen):
    """Every parameter random, at a scale that keeps activations O(1) (timm's init leaves biases
    and LayerNorm affines at 0 / 1, which would hide a transposed bias or a swapped norm)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if name.endswith("gamma"):            # LayerScale
                v = 0.5 + 0.2 * r
            elif "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * r
            elif name.endswith("bias"):
                v = 0.1 * r
            elif name in ("pos_embed", "cls_token", "reg_token", "dist_token"):
                v = 0.5 * r
            else:                                  # (out, in...) weights: 1 / sqrt(fan in)
                v = r / math.sqrt(p[0].numel())
            p.copy_(v.to(p.dtype))


def make_images(folder, gen, sizes):
    """Smooth colour gradients plus noise, PNG (lossless, so decoding is exact everywhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (w, h) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1) * 200
        noise = torch.randn((h, w, 3), generator=gen, dtype=torch.float64).numpy() * 25
        img = np.clip(base + noise + 20, 0, 255).astype(np.uint8)
        path = folder / f"{k}.png"
        Image.fromarray(img, "RGB").save(path)
        paths.append(path)
    return paths


def build(arch, args, overlay, img_size=None):
    args = dict(args)
    if img_size is not None:
        args["img_size"] = img_size
    size = args.get("img_size", timm.create_model(arch, pretrained=False).pretrained_cfg["input_size"][1])
    chans = args.get("in_chans", 3)
    cfg = dict(overlay, input_size=(chans, size, size))
    return timm.create_model(arch, pretrained=False, pretrained_cfg_overlay=cfg, **args).eval()


def json_args(args):
    """model_args as a config.json names them: timm's classes by their import paths (a name
    timm already takes as a string stays one)."""
    names = {SwiGLUPacked: "timm.layers.SwiGLUPacked", torch.nn.SiLU: "torch.nn.SiLU"}
    return {k: names.get(v, v) if k in ("mlp_layer", "act_layer") else v for k, v in args.items()}


def hub_config(model, arch, args):
    """The config.json timm's hub export writes: architecture, num_classes, num_features,
    global_pool, model_args and the pretrained_cfg that says how to evaluate."""
    pc = model.pretrained_cfg
    keep = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "num_classes",
            "first_conv", "classifier", "fixed_input_size")
    return {"architecture": arch, "num_classes": model.num_classes, "num_features": model.num_features,
            "global_pool": model.global_pool, "model_args": json_args(args),
            "pretrained_cfg": {k: list(pc[k]) if isinstance(pc.get(k), tuple) else pc.get(k)
                               for k in keep if k in pc}}


def make_case(out, name, case, seed):
    arch, args, overlay, dtype, resampled, with_images = case
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    model = build(arch, args, overlay)
    randomise(model, gen)
    stored = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(stored, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps(hub_config(model, arch, args), indent=2) + "\n")

    # timm's logits in float64 from the weights as stored (what vitlab reads back).
    as_stored = load_file(str(d / "model.safetensors"))
    weights = {k: v.to(torch.float32) for k, v in as_stored.items()}
    model.load_state_dict(weights, strict=True)
    chans, size = model.pretrained_cfg["input_size"][0], model.pretrained_cfg["input_size"][1]
    expected = {}
    x = torch.randn((2, chans, size, size), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        expected["inputs"] = x.float()
        expected["logits"] = model.double()(x.float().double())
    if resampled:
        big = build(arch, args, overlay, img_size=resampled)
        # timm's own load path: the filter on the state dict as stored (a bf16 table is
        # resampled in float32 and rounded back to bf16), then load_state_dict casts.
        big.load_state_dict(checkpoint_filter_fn(dict(as_stored), big), strict=True)
        xr = torch.randn((2, chans, resampled, resampled), generator=gen, dtype=torch.float64).float()
        with torch.no_grad():
            expected["inputs_resampled"] = xr
            expected["logits_resampled"] = big.double()(xr.double())
    if with_images:
        paths = make_images(d / "images" / "x", gen, [(45, 37), (64, 64), (30, 52)])
        data_cfg = resolve_data_config(model=model)
        transform = create_transform(**data_cfg, is_training=False)
        # The transform's PIL steps (Resize by crop_pct, CenterCrop) give the uint8 pixels; the
        # tensor steps that follow (ToTensor, Normalize) are the model's own normalisation.
        pil_steps = [t for t in transform.transforms if type(t).__name__ in ("Resize", "CenterCrop")]
        pixels = []
        for p in sorted(paths):
            img = Image.open(p).convert("RGB")
            for t in pil_steps:
                img = t(img)
            pixels.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
        expected["pixels"] = torch.stack(pixels).contiguous()
    save_file({k: v.contiguous() for k, v in expected.items()}, str(d / "expected.safetensors"))
    (d / "fixture.json").write_text(json.dumps({
        "made_by": "experiments/timm_parity/make_fixtures.py", "timm": timm.__version__,
        "torch": torch.__version__, "architecture": arch, "model_args": json_args(args), "stored_dtype": str(dtype),
        "resampled_size": resampled, "seed": seed}, indent=2) + "\n")
    print(f"{name}: {sum(p.stat().st_size for p in d.rglob('*') if p.is_file()) / 1024:.0f} KB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--set", choices=("tiny", "large"), default="tiny")
    ap.add_argument("--only", help="comma-separated case names (default: all of the set)")
    a = ap.parse_args()
    cases = TINY if a.set == "tiny" else LARGE
    only = set(a.only.split(",")) if a.only else set(cases)
    failed = []
    for i, (name, case) in enumerate(cases.items()):
        if name in only:
            try:
                make_case(a.out, name, case, seed=1000 + i)
            except Exception:  # the other cases still get made; the exit status says one failed
                traceback.print_exc()
                failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
