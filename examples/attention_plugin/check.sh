#!/usr/bin/env bash
# What CI checks of the plugin route (scripts/test.sh runs it after the suite): installs vitlab
# from BUILD (default build/) into a temporary prefix, builds this example against it out of
# tree, runs its tests, then trains talking-heads attention one short epoch with the installed
# vit_train --plugin and through a two-run vit_sweep, and checks what the results record.
# Usage: bash examples/attention_plugin/check.sh [BUILD]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}" \
  > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" --parallel "$(nproc)"
(cd "$work/build" && ctest --output-on-failure)

plugin=$work/build/libvitlab_talking_heads.so
bin=$work/prefix/bin
# A small synthetic task: the point is the route, not the accuracy.
short=(--set model.attention=talking_heads --set data.spec=synthetic --set data.synthetic.train=1024
       --set data.synthetic.test=256 --set data.val_size=0 --set train.epochs=1 --threads 2)
"$bin/vit_train" --plugin "$plugin" --config "$root/configs/quickstart.json" "${short[@]}" --out "$work/run"
python3 - "$work/run/result.json" "$plugin" <<'PY'
import hashlib, json, sys
r, path = json.load(open(sys.argv[1])), sys.argv[2]
assert r["attention"]["name"] == "talking_heads", r["attention"]
assert r["model"]["attention"]["plugin"] == path, r["model"]["attention"]
p = r["plugins"][0]
assert p["path"] == path and p["attentions"] == ["talking_heads"], p
assert p["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
print(f"vit_train --plugin: talking_heads, {r['params']['attention']} attention parameters, top1 {r['metrics']['top1']}%")
PY
# Its checkpoint without the plugin: one line naming the attention and the plugin.
if "$bin/vit_eval" --checkpoint "$work/run/checkpoint" 2> "$work/eval.err"; then
  echo "vit_eval opened a plugin's checkpoint without the plugin"; exit 1
fi
grep -q "unknown attention 'talking_heads', which comes from the plugin $plugin" "$work/eval.err" || { cat "$work/eval.err"; exit 1; }
VITLAB_PLUGINS=$plugin "$bin/vit_eval" --checkpoint "$work/run/checkpoint" --out "$work/eval.json" > /dev/null 2>&1

cat > "$work/spec.json" <<JSON
{"base": "$root/configs/quickstart.json",
 "set": {"model.attention": "talking_heads", "data.spec": "synthetic", "data.synthetic.train": 1024,
         "data.synthetic.test": 256, "data.val_size": 0, "train.epochs": 1},
 "axes": [{"train.seed": [0, 1]}]}
JSON
"$bin/vit_sweep" "$work/spec.json" --plugin "$plugin" --out "$work/sweep" --jobs 2 > "$work/sweep.log" || { cat "$work/sweep.log"; exit 1; }
python3 - "$work/sweep" "$plugin" <<'PY'
import glob, json, sys
runs = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/runs/*/result.json"))]
assert len(runs) == 2 and all(r["attention"]["name"] == "talking_heads" for r in runs), runs
assert all(r["plugins"][0]["path"] == sys.argv[2] for r in runs)
PY
echo "plugin example: tests passed, trained through vit_train --plugin and a two-run vit_sweep"
