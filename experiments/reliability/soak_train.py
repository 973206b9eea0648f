#!/usr/bin/env python3
"""Kills vit_train with SIGKILL at random moments of one run and resumes it each time; the final
result.json must equal an uninterrupted run's, bit for bit, apart from wall-clock figures.

The kills rotate over three aims, timed from the uninterrupted run's epoch lengths (each epoch
trains, evaluates the validation split, then saves the checkpoint and prints its line):
  step        a random moment of the next epoch's training steps;
  eval        a random moment of the next epoch's validation pass;
  checkpoint  the moment a checkpoint's temporary directory appears (polled every millisecond),
              so the process dies while writing it.
Every resumed process completes at least one epoch before its kill, so the run ends. Writes a
JSON report (every kill: aim, when, the epoch reached, whether a write was cut) and exits 1 if
the results differ.

    python3 experiments/reliability/soak_train.py build/apps/vit_train OUT [--kills 20] [--seed 0]
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fresh_runs, read_json, without_timing, write_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def train(exe, config, out, resume):
    cmd = [exe, "--config", config, "--out", out] + (["--resume"] if resume else [])
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")  # no re-execution (apps' prefer_passive_openmp)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)


def epoch_lines(proc):
    """(time, line) for each line the process prints, as it prints it."""
    for line in proc.stdout:
        yield time.monotonic(), line.rstrip("\n")


def writing_checkpoint(out):
    return any(name.startswith("checkpoint.tmp-") for name in os.listdir(out)) if os.path.isdir(out) else False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("vit_train")
    p.add_argument("out")
    p.add_argument("--config", default=os.path.join(HERE, "soak_train.json"))
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    reference, killed = fresh_runs(a.out)

    # The uninterrupted run, and how long an epoch's training and the rest of it take.
    t0 = time.monotonic()
    proc = train(a.vit_train, a.config, reference, False)
    marks = [t for t, line in epoch_lines(proc) if line.startswith("epoch")]
    if proc.wait() != 0:
        sys.exit("soak: the reference run failed")
    ref = read_json(os.path.join(reference, "result.json"))
    periods = [b - c for b, c in zip(marks[1:], marks[:-1])]
    period = sorted(periods)[len(periods) // 2]
    train_s = sorted(r["seconds"] for r in ref["history"])[len(ref["history"]) // 2]
    rest_s = max(period - train_s, 0.01)  # validation + checkpoint
    print(f"reference: {len(marks)} epochs in {time.monotonic() - t0:.1f} s; an epoch trains {train_s:.2f} s, "
          f"then evaluates and saves in {rest_s:.2f} s", flush=True)

    kills = []
    aims = ["step", "eval", "checkpoint"]
    resume = False
    while True:
        proc = train(a.vit_train, a.config, killed, resume)
        resume = True
        aim = aims[len(kills) % len(aims)] if len(kills) < a.kills else None
        lines = epoch_lines(proc)
        # Wait for this process's first completed epoch (so every process moves the run on).
        first = None
        for t, line in lines:
            if line.startswith("epoch"):
                first = t, line
                break
        if first is None or aim is None:  # the run ended (or needs no more kills): let it finish
            for _ in lines:
                pass
            break
        t_epoch, line = first
        epoch = int(line.split()[1].split("/")[0])
        cut = False
        if aim == "checkpoint":
            deadline = t_epoch + 5 * period
            while proc.poll() is None and not writing_checkpoint(killed) and time.monotonic() < deadline:
                time.sleep(0.001)
            cut = writing_checkpoint(killed)
        else:
            at = t_epoch + (rng.uniform(0.05, 0.95) * train_s if aim == "step" else train_s + rng.uniform(0.1, 0.7) * rest_s)
            while proc.poll() is None and time.monotonic() < at:
                time.sleep(0.001)
        if proc.poll() is not None:  # it ended before the kill
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for _ in lines:
            pass
        kills.append({"aim": aim, "after_epoch_line_s": round(time.monotonic() - t_epoch, 3), "epoch_done": epoch,
                      "checkpoint_write_cut": cut})
        print(f"kill {len(kills):2d}: {aim:10s} {kills[-1]['after_epoch_line_s']:6.2f} s after epoch {epoch}"
              + (" (during a checkpoint write)" if cut else ""), flush=True)
    if proc.wait() != 0:
        sys.exit("soak: the killed run's last resume failed")
    back = read_json(os.path.join(killed, "result.json"))
    same = without_timing(back) == without_timing(ref)
    report = {"command": "python3 experiments/reliability/soak_train.py " + " ".join(sys.argv[1:]),
              "config": read_json(a.config), "kills": kills, "kills_survived": len(kills),
              "checkpoint_writes_cut": sum(k["checkpoint_write_cut"] for k in kills),
              "result_equal": same, "test_top1": back["metrics"]["top1"], "reference_top1": ref["metrics"]["top1"]}
    write_json(os.path.join(a.out, "soak_train.json"), report)
    print(f"{len(kills)} kills survived; result.json {'equals' if same else 'DIFFERS FROM'} the uninterrupted run's "
          f"(test top-1 {back['metrics']['top1']:.2f}%)")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
