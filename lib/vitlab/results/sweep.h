#pragma once
// A sweep: a base run config and axes, expanded into named runs (DESIGN section 5), and the
// state of each run on disk. The spec file:
//   {"base": "../../configs/quickstart.json" or {config},   // a path is relative to the spec
//    "set": {"train.epochs": 1},                             // optional overrides of the base
//    "axes": [{"model.attention": ["mha", {"name": "gqa", "kv_heads": 2}]},
//             {"model.pos": ["learned", "rope"], "model.attention.rope_dim": [0, 8]},  // zipped
//             {"train.seed": [0, 1, 2]}]}
// Runs are the product over the axes, in order (the last axis varies fastest); the keys inside
// one axis are zipped (equal-length lists). A run's name is made of its settings, so extending
// an axis later keeps the names, and the results, of the runs already there.
#include <string>
#include <utility>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

constexpr const char* kSweepSchema = "vitlab.sweep/1";

struct SweepAxis {
  std::vector<std::string> keys;           // dotted config paths, zipped
  std::vector<std::vector<json>> values;   // values[k][i]: key k in the axis's i-th step
  size_t size() const { return values.front().size(); }
};

struct SweepSpec {
  json base = json::object();  // the config document before the axes (base file + set)
  std::vector<SweepAxis> axes;
  json source;                 // the spec as written
};

struct SweepRun {
  int index = 0;
  std::string name;
  json settings;  // {"model.attention": ..., "train.seed": 0}: the axis values of this run
  json config;    // the full resolved run config (the document as set, when invalid)
  std::string invalid;  // why the config does not validate ("" when it does)
};

// Parses and checks a spec; errors name `where` (the spec file) and the field.
SweepSpec parse_sweep_spec(const json& j, const std::string& where, const std::string& spec_dir);
SweepSpec read_sweep_spec(const std::string& path);
// Every run, in a fixed order. A run whose config does not validate is kept, marked invalid:
// it fails alone when it runs, with vit_train's error.
std::vector<SweepRun> expand_sweep(const SweepSpec& spec);
// A run's settings in axis order (json objects sort their keys; names keep the spec's order).
using Settings = std::vector<std::pair<std::string, json>>;
// "attention-gqa_kv_heads-2__seed-0": short keys (the last path component, or the whole path
// where two keys share it) and values written plainly, characters outside [A-Za-z0-9._-]
// replaced; names over 96 characters end in a hash of the whole name.
std::string sweep_run_name(const Settings& settings);
// Whether `name` is one sweep_run_name can give (letters, digits, '.', '_', '-'; at most 96
// characters; not "." or ".."): a name read from sweep.json becomes a directory under runs/.
bool is_run_name(const std::string& name);

// --shard i/n: run index r belongs to shard r % n.
struct Shard {
  int index = 0, count = 1;
  bool has(int run_index) const { return run_index % count == index; }
};
Shard parse_shard(const std::string& text, const std::string& flag);

// Where a run lives inside the sweep directory, and what is known about it there.
std::string run_directory(const std::string& sweep_dir, const std::string& name);  // DIR/runs/NAME
struct RunState {
  std::string state = "pending";  // pending | running | done | failed | interrupted
  int attempts = 0;
  std::string error;              // failed: the run's last error line
  double seconds = 0;             // wall time of the attempts so far
  std::string device;
  json to_json() const;
  static RunState from_json(const json& j);
};
// The state as recorded by the sweep that ran it (sweep_state.json in the run directory), with
// a result.json counting as done and a held lock as running.
RunState read_run_state(const std::string& run_dir);
void write_run_state(const std::string& run_dir, const RunState& s);
std::string run_lock_path(const std::string& run_dir);

// sweep.json: the spec, and per run its name, settings, accounting and state; written
// atomically from what is on disk, so several shards sharing a directory agree.
json sweep_record(const SweepSpec& spec, const std::vector<SweepRun>& runs, const std::vector<json>& accounting,
                  const std::string& sweep_dir);
void write_sweep_record(const std::string& sweep_dir, const json& record);

}  // namespace vitlab
