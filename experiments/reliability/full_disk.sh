#!/usr/bin/env bash
# A disk that fills during training, for real: vit_train writes its run to a small tmpfs
# (root only: mount), so the second epoch's checkpoint fails with ENOSPC. The run must stop with
# one error line naming the file, keep the first checkpoint loadable (vit_eval reads it), leave
# no partial copy, and after the filesystem grows, --resume must finish with the result.json of
# an uninterrupted run (apart from wall-clock figures). The test suite checks the same with a
# file-size limit, which needs no root (Cli.FullDiskDuringACheckpointKeepsThePreviousOne).
# Usage: bash experiments/reliability/full_disk.sh BUILD OUT   (writes OUT/full_disk.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 out=$2
here=experiments/reliability
mkdir -p "$out"
disk=$(mktemp -d)
trap 'umount "$disk" 2>/dev/null || true; rm -rf "$disk"' EXIT
export OMP_WAIT_POLICY=PASSIVE
config=$(mktemp --suffix .json)
python3 - "$here/soak_train.json" "$config" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["train"]["epochs"] = 3
json.dump(c, open(sys.argv[2], "w"))
PY
rm -rf "$out/reference"
"$build/apps/vit_train" --config "$config" --out "$out/reference" > /dev/null
mount -t tmpfs -o size=4m tmpfs "$disk"
rc=0
"$build/apps/vit_train" --config "$config" --out "$disk/run" > "$out/full_disk_run.log" 2>&1 || rc=$?
error=$(grep "vit_train: error:" "$out/full_disk_run.log" || true)
left=$(ls "$disk/run")
eval_rc=0
"$build/apps/vit_eval" --checkpoint "$disk/run/checkpoint" --out "$out/full_disk_eval.json" > /dev/null 2>&1 || eval_rc=$?
mount -o remount,size=64m "$disk"
resume_rc=0
"$build/apps/vit_train" --config "$config" --out "$disk/run" --resume > /dev/null 2>&1 || resume_rc=$?
python3 - "$out" "$disk/run/result.json" "$rc" "$error" "$left" "$eval_rc" "$resume_rc" <<'PY'
import json, os, sys
sys.path.insert(0, "experiments/reliability")
from common import read_json, without_timing, write_json
out, result, rc, error, left, eval_rc, resume_rc = sys.argv[1:]
ref = read_json(os.path.join(out, "reference", "result.json"))
same = os.path.exists(result) and without_timing(read_json(result)) == without_timing(ref)
report = {"command": "bash experiments/reliability/full_disk.sh BUILD OUT", "tmpfs": "4 MiB, then 64 MiB",
          "exit_status": int(rc), "error": error, "run_directory_after_the_error": left.split(),
          "previous_checkpoint_evaluates": eval_rc == "0", "resume_exit_status": int(resume_rc),
          "result_equal_after_resume": same}
write_json(os.path.join(out, "full_disk.json"), report)
print(json.dumps(report, indent=1))
ok = rc == "1" and "No space left on device" in error and eval_rc == "0" and resume_rc == "0" and same \
    and left.split() == ["checkpoint", "run_config.json"]
sys.exit(0 if ok else 1)
PY
