#pragma once
// Runs a sweep's runs as child processes of vit_train: `jobs` at a time, each pinned to a
// device or a share of the CPU threads, resumable (finished runs are skipped, interrupted ones
// continue from their checkpoints), with every run's state and sweep.json kept on disk.
#include <string>
#include <vector>

#include "vitlab/results/sweep.h"

namespace vitlab {

struct SweepOptions {
  std::string dir;                   // the sweep directory
  std::string trainer;               // path of vit_train
  int jobs = 1;                      // runs at a time
  std::vector<std::string> devices;  // run k of a batch goes to devices[slot % size]; empty: the configs'
  int threads = 0;                   // CPU threads per run (0: the cores divided by jobs)
  Shard shard;
  bool retry_failed = false;         // run failed runs again (otherwise they stay failed)
};

struct SweepOutcome {
  int done = 0, failed = 0, other = 0;  // other: running elsewhere, or not in this shard
  bool interrupted = false;             // SIGINT or SIGTERM stopped it
};

// `accounting[i]` describes runs[i] (parameters, FLOPs; shown in sweep.json and the summary).
SweepOutcome run_sweep(const SweepSpec& spec, const std::vector<SweepRun>& runs, const std::vector<json>& accounting,
                       const SweepOptions& opt);

// "cpu", "cuda", "cuda:1" or a bare GPU index "1"; a comma-separated list for --devices.
std::vector<std::string> parse_devices(const std::string& text, const std::string& flag);

}  // namespace vitlab
