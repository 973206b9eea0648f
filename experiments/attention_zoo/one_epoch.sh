#!/usr/bin/env bash
# One epoch of Fashion-MNIST per attention variant at the width of configs/fmnist_small.json, through vit_train
# as a user runs it. Usage: one_epoch.sh BUILD_DIR DEVICE OUT_DIR [DATA_SPEC]
# Prints one table row per variant and keeps each run's result.json under OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 device=$2 out=$3 data=${4:-fashion-mnist}
source experiments/attention_zoo/variants.sh
mkdir -p "$out"
printf '| pos | attention | attn params/layer | train img/s | test top-1 |\n|---|---|---|---|---|\n'
i=0
for v in "${VARIANTS[@]}"; do
  pos=${v%% *} spec=${v#* }
  run="$out/$(printf '%02d' $i)"; i=$((i + 1))
  rm -rf "$run"
  "$build/apps/vit_train" --config configs/fmnist_small.json --data "$data" --device "$device" \
    --set train.epochs=1 --set "model.pos=$pos" --set "model.attention=$spec" --out "$run" > "$run.log" 2>&1 ||
    { echo "| $pos | \`$spec\` | failed: $(tail -n 1 "$run.log") | | |"; continue; }
  python3 - "$run/result.json" "$pos" "$spec" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | `{sys.argv[3]}` | {r['params']['attention_per_layer']} | {r['timing']['images_per_s']:.0f} | {r['metrics']['top1']:.2f} |")
PY
done
