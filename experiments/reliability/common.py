"""What the soak scripts share: running vitlab's apps, reading results without their timings."""
import json
import os
import subprocess


def without_timing(result):
    """A result.json's content that a resumed run must reproduce bit for bit: all of it but the
    wall-clock figures, the host, the creation time and where the run was written (its
    directory's name, run_id, and the checkpoint's path)."""
    r = {k: v for k, v in result.items() if k not in ("created", "host", "timing", "checkpoint", "run_id")}
    r["history"] = [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")}
                    for row in r.get("history", [])]
    return r


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def fresh_runs(out):
    """OUT/reference and OUT/killed, removed if a previous soak left them."""
    os.makedirs(out, exist_ok=True)
    dirs = os.path.join(out, "reference"), os.path.join(out, "killed")
    for d in dirs:
        subprocess.run(["rm", "-rf", d], check=True)
    return dirs
