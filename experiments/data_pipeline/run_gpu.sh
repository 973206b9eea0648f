#!/usr/bin/env bash
# One call on the GPU machine: build, run the nvJPEG loader's tests, generate a folder of
# ImageNet-sized JPEGs, and measure in one place: vitlab's train and eval pipelines alone
# (vit_bench --pipeline, nvJPEG), timm's own loader on the same folder (torchvision ImageFolder +
# DataLoader, pinned memory, timm's create_transform with RandAugment and random erasing; and
# torchvision's RandomResizedCrop + flip alone, vitlab's work), vit_small p16 224 training from
# the folder (vit_train, the last epoch's img/s) and on synthetic data (vit_bench, the same
# config), and the step's steady state fed by the folder's loader beside one batch in memory
# (vit_bench --data, graphed and eager). Writes $OUT/summary.json (every measurement, with the device) and prints a table.
# IMAGES (default 60000) sets the folder's size. About 8 minutes on a cold machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/runs/data_pipeline}
mkdir -p "$OUT"
W=/tmp/data_pipeline  # the parts; $OUT gets the summary
mkdir -p $W
here=experiments/data_pipeline
data=/tmp/jpeg-folder
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
source scripts/gpu_build.sh all
(cd build-gpu && ctest -R "Nvjpeg|Transform|HoldOut|AutoAugment" --output-on-failure) 2>&1 | tail -n 30 || true
# The augmentation fixtures were made with Debian's PIL; remade here through timm's own op functions.
(cd tests/fixtures/auto_augment && python3 make_fixtures.py --check) 2>&1 | tail -n 3 | tee "$W/fixtures_check.txt" || true
python3 $here/make_jpeg_folder.py $data --train ${IMAGES:-60000} --val 2000 --jobs "$(nproc)"
B=build-gpu/apps
# timm's train transform on the GPU: RandAugment and random erasing after the loader.
$B/vit_bench --config $here/train_small_224.json --data folder:$data --pipeline 40 --warmup 5 --batch-size 256 \
  --set train.augment.auto_augment=rand-m9-mstd0.5-inc1 --set train.augment.re_prob=0.25 \
  --device cuda --json "$W/vitlab_pipeline.json"
for w in 16 8; do
  python3 $here/torch_loader.py $data/train --transform timm --workers $w --batch-size 256 --batches 20 \
    > "$W/timm_loader_w$w.json"
done
python3 $here/torch_loader.py $data/train --transform rrc --workers 16 --batch-size 256 --batches 20 \
  > "$W/torch_rrc_w16.json"
rm -rf /tmp/folder-run
$B/vit_train --config $here/train_small_224.json --data folder:$data --device cuda --out /tmp/folder-run \
  > "$W/vit_train_folder.log" 2>&1 || { tail -n 3 "$W/vit_train_folder.log"; exit 1; }
cp /tmp/folder-run/result.json "$W/train_folder_result.json"
# The same with timm's RandAugment and random erasing (eager: their draws are on the host).
rm -rf /tmp/folder-run-ra
$B/vit_train --config $here/train_small_224.json --data folder:$data --device cuda --out /tmp/folder-run-ra \
  --set train.epochs=2 --set train.cuda_graph=false --set train.augment.auto_augment=rand-m9-mstd0.5-inc1 \
  --set train.augment.re_prob=0.25 > "$W/vit_train_folder_ra.log" 2>&1 || { tail -n 3 "$W/vit_train_folder_ra.log"; exit 1; }
cp /tmp/folder-run-ra/result.json "$W/train_folder_ra_result.json"
$B/vit_bench --config $here/train_small_224.json --set data.crop_pct=0 --mode train --device cuda --json "$W/train_synthetic.json" \
  > "$W/train_synthetic.log" 2>&1
# Steady state in one process: the same step on one batch in memory and fed by the folder's
# loader (vit_bench --data), with CUDA graphs and eager.
$B/vit_bench --config $here/train_small_224.json --data folder:$data --mode train --device cuda \
  --json "$W/train_fed.json" > "$W/train_fed.log" 2>&1
$B/vit_bench --config $here/train_small_224.json --data folder:$data --mode train --device cuda \
  --set train.cuda_graph=false --json "$W/train_fed_eager.json" > "$W/train_fed_eager.log" 2>&1
python3 - "$W" "$OUT/summary.json" <<'PY'
import json, sys
o = sys.argv[1]
v = json.load(open(f"{o}/vitlab_pipeline.json"))["results"]
t16, t8 = (json.load(open(f"{o}/timm_loader_w{w}.json"))["images_per_s"] for w in (16, 8))
rrc = json.load(open(f"{o}/torch_rrc_w16.json"))["images_per_s"]
run = json.load(open(f"{o}/train_folder_result.json"))
syn = json.load(open(f"{o}/train_synthetic.json"))["results"][0]["train"]["images_per_s"]
folder = run["history"][-1]["images_per_s"]
ra = json.load(open(f"{o}/train_folder_ra_result.json"))["history"][-1]["images_per_s"]
fed = {k: json.load(open(f"{o}/train_fed{k}.json"))["results"][0] for k in ("", "_eager")}
rows = [("vitlab train pipeline (nvJPEG, rrc)", v["train"]["images_per_s"]),
        ("vitlab train pipeline + flip, rand-m9, re 0.25 (GPU)", v["train_augmented"]["images_per_s"]),
        ("vitlab eval pipeline (nvJPEG, resize + crop)", v["eval"]["images_per_s"]),
        ("timm loader, 16 workers (rand-m9, re 0.25)", t16), ("timm loader, 8 workers", t8),
        ("torch DataLoader, 16 workers (rrc + flip)", rrc),
        ("vit_small p16 224 training from the folder (last epoch)", folder),
        ("the same with rand-m9 and re 0.25, eager (last epoch)", ra),
        ("vit_small p16 224 training on synthetic data", syn),
        ("steady state, graphed: one batch in memory", fed[""]["train"]["images_per_s"]),
        ("steady state, graphed: fed by the folder's loader", fed[""]["train_from_data"]["images_per_s"]),
        ("steady state, eager: one batch in memory", fed["_eager"]["train"]["images_per_s"]),
        ("steady state, eager: fed by the folder's loader", fed["_eager"]["train_from_data"]["images_per_s"])]
for name, x in rows:
    print(f"{name:58s} {x:9.0f} img/s")
print(f"train pipeline / timm loader (16 workers): {v['train']['images_per_s'] / t16:.2f}x; "
      f"with the same augmentation: {v['train_augmented']['images_per_s'] / t16:.2f}x")
print(f"training from the folder / synthetic: {100 * folder / syn:.1f}%")
for k, name in (("", "graphed"), ("_eager", "eager")):
    f = fed[k]["train_from_data"]
    print(f"steady state {name}: fed / in memory {100 * f['vs_synthetic']:.1f}%, waiting for data "
          f"{100 * f['data_wait_fraction']:.0f}% of the time")
print(f"listing {v['listing_seconds']:.2f} s, max RSS {v['max_rss_bytes'] / 2**20:.0f} MiB")
parts = {name: json.load(open(f"{o}/{name}.json")) for name in
         ("vitlab_pipeline", "timm_loader_w16", "timm_loader_w8", "torch_rrc_w16", "train_folder_result",
          "train_folder_ra_result", "train_synthetic", "train_fed", "train_fed_eager")}
parts["fixtures_check"] = open(f"{o}/fixtures_check.txt").read()
json.dump({"command": "experiments/data_pipeline/run_gpu.sh", "table": dict(rows), "parts": parts},
          open(sys.argv[2], "w"), indent=1)
PY
