"""Checks vit_convert --to hf: transformers' from_pretrained of the exported directory against
timm's model of the same checkpoint exported with --to timm (timm's logits equal vitlab's, see
tests/test_timm.cpp), on random inputs in float64. Prints one JSON line.

    python3 experiments/hf_parity/check_export.py HF_DIR TIMM_DIR
"""
import json
import sys

import timm
import torch
from transformers import AutoModelForImageClassification


def main():
    hf_dir, timm_dir = sys.argv[1], sys.argv[2]
    hf, info = AutoModelForImageClassification.from_pretrained(hf_dir, dtype=torch.float32, output_loading_info=True)
    tm = timm.create_model("local-dir:" + timm_dir, pretrained=True)
    hf, tm = hf.eval().double(), tm.eval().double()
    c = hf.config
    x = torch.randn((4, c.num_channels, c.image_size, c.image_size), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = hf(pixel_values=x).logits, tm(x)
    err = ((a - b).abs().max() / b.abs().max()).item()
    # Lists or sets, as transformers' version has them.
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    print(json.dumps({"architecture": c.architectures[0], "missing_keys": missing, "unexpected_keys": unexpected,
                      "max_relative_error": err, "ok": err < 1e-9 and not missing and not unexpected}))


if __name__ == "__main__":
    main()
