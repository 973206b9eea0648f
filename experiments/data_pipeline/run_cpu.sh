#!/usr/bin/env bash
# The folder pipeline on this machine's CPU cores beside torch's DataLoader on the same JPEG
# folder, with the same work: RandomResizedCrop(224) + flip, batches of 64 (vitlab flips on the
# device, in the step; torch's workers flip, convert and normalise); then the listing time and
# memory of an ImageNet-sized folder (1.33 M hard links); and on photo-sized JPEGs, the training
# pipeline with reduced decodes (data.reduced_decode, the default) against full-size ones. Writes results/cpu_<N>core.json and
# prints a table. Needs the build (scripts/build.sh) and, for the
# reference, Debian's python3-torchvision and python3-pil (scripts/setup.sh --reference).
set -euo pipefail
cd "$(dirname "$0")"
root=../..
data=${DATA:-$root/data/jpeg-folder-small}
workers=${WORKERS:-$(nproc)}
batches=${BATCHES:-30}
/usr/bin/python3 make_jpeg_folder.py "$data" --train ${TRAIN:-2500} --val 1000
mkdir -p results
out=results/cpu_$(nproc)core.json
$root/build/apps/vit_bench --config pipeline_224.json --data "folder:$data" --set data.workers=$workers \
  --pipeline "$batches" --warmup 2 --device cpu --json /tmp/vitlab_pipeline.json
# Photo-sized JPEGs (1200-1800 px sides), where RandomResizedCrop's box is often 2x the output:
# the training pipeline with reduced decodes (the default) and with full-size decodes, alternated.
/usr/bin/python3 make_jpeg_folder.py "$data-large" --train 640 --val 160 --sides 1200 1800
for round in 1 2; do
  for reduced in true false; do
    $root/build/apps/vit_bench --config pipeline_224.json --data "folder:$data-large" --set data.workers=$workers \
      --set data.reduced_decode=$reduced --pipeline 8 --warmup 1 --device cpu --json /tmp/vitlab_large_${reduced}_$round.json
  done
done
/usr/bin/python3 torch_loader.py "$data/train" --workers "$workers" --batch-size 64 --batches "$batches" --warmup 2 \
  > /tmp/torch_pipeline.json
/usr/bin/python3 make_link_folder.py "$data/train" "$data-imagenet-sized"
$root/build/apps/vit_bench --config pipeline_224.json --data "folder:$data-imagenet-sized" --set model.num_classes=1000 \
  --pipeline 3 --warmup 1 --device cpu --json /tmp/vitlab_listing.json
/usr/bin/python3 - "$out" <<'PY'
import json, sys
v = json.load(open("/tmp/vitlab_pipeline.json"))
t = json.load(open("/tmp/torch_pipeline.json"))
large = {k: [json.load(open(f"/tmp/vitlab_large_{k}_{r}.json"))["results"]["train"]["images_per_s"] for r in (1, 2)]
         for k in ("true", "false")}
big = json.load(open("/tmp/vitlab_listing.json"))["results"]
r = {"command": "experiments/data_pipeline/run_cpu.sh", "vitlab": v, "torch": t,
     "photo_sized_train": {"reduced_decode": large["true"], "full_decode": large["false"]},
     "imagenet_sized_listing": {"images": big["data"]["train_size"] + big["data"]["test_size"],
                                "listing_seconds": big["listing_seconds"], "max_rss_bytes": big["max_rss_bytes"]}}
json.dump(r, open(sys.argv[1], "w"), indent=1)
vt, ve, tt = v["results"]["train"]["images_per_s"], v["results"]["eval"]["images_per_s"], t["images_per_s"]
print(f"{'loader':44s} {'img/s':>8s}")
print(f"{'vitlab train (rrc + flip)':44s} {vt:8.0f}")
print(f"{'vitlab eval (resize 256, centre crop 224)':44s} {ve:8.0f}")
print(f"{'torch DataLoader train (rrc + flip)':44s} {tt:8.0f}   vitlab / torch: {vt / tt:.2f}x")
lr, lf = max(large["true"]), max(large["false"])
print(f"{'vitlab train, 1200-1800 px, reduced decodes':44s} {lr:8.0f}")
print(f"{'vitlab train, 1200-1800 px, full decodes':44s} {lf:8.0f}   reduced / full: {lr / lf:.2f}x")
L = r["imagenet_sized_listing"]
print(f"listing {L['images']} images: {L['listing_seconds']:.2f} s, peak RSS {L['max_rss_bytes'] / 2**20:.0f} MiB")
PY
