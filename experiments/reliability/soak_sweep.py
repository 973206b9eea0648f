#!/usr/bin/env python3
"""Kills a vit_sweep of two jobs with SIGKILL at random moments, each time either the sweep
process or one of its vit_train children, and starts the same command again (with
--retry-failed, since a run whose process was killed is marked failed). At the end every run
must be done exactly once (one result.json, no run lost or repeated) and summary.csv must equal
an uninterrupted sweep's apart from its timing columns. Writes a JSON report; exits 1 on any
difference.

    python3 experiments/reliability/soak_sweep.py build/apps/vit_sweep OUT [--kills 20] [--seed 0]
"""
import argparse
import csv
import io
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fresh_runs, read_json, write_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TIMING = ("images_per_s", "train_seconds")


def sweep(exe, spec, out):
    cmd = [exe, spec, "--out", out, "--jobs", "2", "--threads", "1", "--retry-failed"]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def summary(out):
    with open(os.path.join(out, "summary.csv")) as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("vit_sweep")
    p.add_argument("out")
    p.add_argument("--spec", default=os.path.join(HERE, "soak_sweep.json"))
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    reference, killed = fresh_runs(a.out)

    t0 = time.monotonic()
    if sweep(a.vit_sweep, a.spec, reference).wait() != 0:
        sys.exit("soak: the reference sweep failed")
    length = time.monotonic() - t0
    print(f"reference: {length:.1f} s", flush=True)

    def states():
        runs = os.path.join(killed, "runs")
        return {r: read_json(os.path.join(runs, r, "sweep_state.json")).get("state")
                for r in sorted(os.listdir(runs))} if os.path.isdir(runs) else {}

    # A killed child leaves its sweep running (the run is marked failed and the sweep goes on);
    # a killed sweep takes its children with it and is started again.
    kills, proc = [], None
    while len(kills) < a.kills:
        if proc is None or proc.poll() is not None:
            if proc is not None and all(s == "done" for s in states().values()):
                print("the sweep ended before all its kills", flush=True)
                break
            proc = sweep(a.vit_sweep, a.spec, killed)
        # The moment is drawn once the sweep runs a child: a sweep killed while it starts up
        # (it expands the spec and accounts every run first) would never move on.
        while proc.poll() is None and not children(proc.pid):
            time.sleep(0.005)
        at = time.monotonic() + rng.uniform(0.2, length / 16)
        while proc.poll() is None and time.monotonic() < at:
            time.sleep(0.005)
        victim = rng.choice(["sweep", "child"])
        kids = children(proc.pid)
        if proc.poll() is not None or (victim == "child" and not kids):
            continue
        os.kill(rng.choice(kids) if victim == "child" else proc.pid, signal.SIGKILL)
        if victim == "sweep":
            proc.wait()
        else:
            time.sleep(0.2)  # the sweep sees its child's end
        kills.append({"victim": victim, "states": states()})
        print(f"kill {len(kills):2d}: {victim:5s}  " + " ".join(v[:4] for v in kills[-1]["states"].values()), flush=True)
    if proc is not None:
        proc.wait()
    if sweep(a.vit_sweep, a.spec, killed).wait() != 0:
        sys.exit("soak: the final sweep failed")

    record = read_json(os.path.join(killed, "sweep.json"))
    names = [r["name"] for r in record["runs"]]
    problems = []
    for name in names:
        run = os.path.join(killed, "runs", name)
        st = read_json(os.path.join(run, "sweep_state.json"))
        if st.get("state") != "done":
            problems.append(f"{name}: {st.get('state')}")
        results = [f for f in os.listdir(run) if f.startswith("result")]
        if results != ["result.json"]:
            problems.append(f"{name}: {results}")
    if len(set(names)) != len(names):
        problems.append("a run is listed twice")
    same = summary(killed) == summary(reference)
    if not same:
        problems.append("summary.csv differs from the uninterrupted sweep's")
    report = {"command": "python3 experiments/reliability/soak_sweep.py " + " ".join(sys.argv[1:]),
              "spec": read_json(a.spec), "kills": kills, "kills_survived": len(kills),
              "runs": len(names), "summary_equal": same, "problems": problems}
    write_json(os.path.join(a.out, "soak_sweep.json"), report)
    print(f"{len(kills)} kills survived; {len(names)} runs, " + ("all done once, summary.csv equal" if not problems
                                                               else "PROBLEMS: " + "; ".join(problems)))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
