"""timm reads a checkpoint that `vit_convert --to timm` wrote, and evaluates Fashion-MNIST's
test split to vitlab's own metrics (vit_eval, float32 on CPU).

    python3 experiments/timm_parity/check_export.py TIMM_DIR FASHION_MNIST_DIR VITLAB_EVAL_JSON

The model is built the way timm builds a hub checkpoint: create_model(architecture,
pretrained_cfg_overlay=pretrained_cfg, **model_args), then the weights with strict=True (every
name and shape must be timm's). Exits non-zero when the metrics disagree.
"""
import gzip
import json
import sys

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    timm_dir, data_dir, vitlab_eval = sys.argv[1:4]
    cfg = json.load(open(f"{timm_dir}/config.json"))
    model = timm.create_model(cfg["architecture"], pretrained=False, pretrained_cfg_overlay=cfg["pretrained_cfg"],
                              **cfg["model_args"]).eval()
    model.load_state_dict(load_file(f"{timm_dir}/model.safetensors"), strict=True)
    images = torch.from_numpy(idx(f"{data_dir}/t10k-images-idx3-ubyte.gz").copy()).float().unsqueeze(1)
    labels = torch.from_numpy(idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    pc = cfg["pretrained_cfg"]
    mean = torch.tensor(pc["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pc["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = torch.cat([model((images[i:i + 1000] / 255 - mean) / std) for i in range(0, len(images), 1000)])
    top1 = (logits.argmax(1) == labels).double().mean().item() * 100
    loss = F.cross_entropy(logits.double(), labels).item()
    v = json.load(open(vitlab_eval))["metrics"]
    print(f"timm {timm.__version__}: {cfg['architecture']} with model_args {cfg['model_args']}")
    print(f"timm   top1 {top1:.2f}%  loss {loss:.6f}")
    print(f"vitlab top1 {v['top1']:.2f}%  loss {v['loss']:.6f}")
    # Float32 on two libraries: an image whose top two logits tie to rounding may flip.
    ok = abs(top1 - v["top1"]) <= 0.02 and abs(loss - v["loss"]) <= 1e-4 * abs(v["loss"])
    try:  # timm >= 1.0.16 also reads a local folder as it reads the hub
        local = timm.create_model(f"local-dir:{timm_dir}", pretrained=True).eval()
        with torch.no_grad():
            same = torch.equal(local((images[:8] / 255 - mean) / std), logits[:8])
        print(f"create_model('local-dir:...', pretrained=True): loads, same logits: {same}")
    except Exception as e:  # noqa: BLE001 (report whatever this timm does)
        print(f"create_model('local-dir:...'): not available here ({type(e).__name__}: {str(e)[:120]})")
    print("export check:", "ok" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
