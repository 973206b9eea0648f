#include "vitlab/results/sweep.h"

#include <cctype>
#include <cstdio>
#include <map>

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/results/run_record.h"

namespace vitlab {

SweepSpec parse_sweep_spec(const json& j, const std::string& where, const std::string& spec_dir) {
  if (!j.is_object()) fail(where, ": a sweep spec is a JSON object with base, set and axes");
  for (const auto& [key, value] : j.items())
    if (key != "base" && key != "set" && key != "axes" && key != "description")
      fail(where, ": ", key, ": unknown key (expected base, set, axes, description)");
  SweepSpec spec;
  spec.source = j;
  if (j.contains("base")) {
    const json& b = j["base"];
    if (b.is_string()) {
      std::string path = b.get<std::string>();
      if (!path.empty() && path[0] != '/') path = join_path(spec_dir, path);
      if (!is_regular_file(path)) fail(where, ": base: no such file ", path);
      spec.base = read_json_file(path);
    } else if (b.is_object()) {
      spec.base = b;
    } else {
      fail(where, ": base: expected a config file path or a config object");
    }
  }
  if (j.contains("set")) {
    if (!j["set"].is_object()) fail(where, ": set: expected an object {\"key.path\": value}");
    for (const auto& [key, value] : j["set"].items()) set_path(spec.base, key, value, where + ": set." + key);
  }
  if (!j.contains("axes") || !j["axes"].is_array()) fail(where, ": axes: expected a list of axes");
  const json& axes = j["axes"];
  for (size_t a = 0; a < axes.size(); ++a) {
    const std::string at = where + ": axes[" + std::to_string(a) + "]";
    if (!axes[a].is_object() || axes[a].empty())
      fail(at, ": expected an object {\"key.path\": [values]} (several keys are zipped)");
    SweepAxis axis;
    for (const auto& [key, values] : axes[a].items()) {
      if (!values.is_array() || values.empty()) fail(at, ".", key, ": expected a non-empty list of values");
      if (!axis.values.empty() && values.size() != axis.size())
        fail(at, ".", key, ": ", values.size(), " values, but ", axis.keys.front(), " has ", axis.size(),
             " (keys of one axis are zipped and need equal lengths)");
      for (const auto& other : spec.axes)
        for (const auto& k : other.keys)
          if (k == key) fail(at, ".", key, ": this key is already an axis");
      axis.keys.push_back(key);
      axis.values.emplace_back(values.begin(), values.end());
    }
    spec.axes.push_back(std::move(axis));
  }
  return spec;
}

SweepSpec read_sweep_spec(const std::string& path) {
  if (!is_regular_file(path)) fail(path, ": no such sweep spec");
  return parse_sweep_spec(read_json_file(path), path, parent_path(path));
}

namespace {

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : "-") + value_text(e);
    return s;
  }
  if (v.is_object()) {
    // {"name": "gqa", "kv_heads": 2} -> "gqa_kv_heads-2"; nested objects -> "k24.q24".
    std::string s = v.contains("name") && v["name"].is_string() ? v["name"].get<std::string>() : "";
    for (const auto& item : v.items()) {  // not a structured binding: clang cannot capture one
      const std::string& key = item.key();
      const json& value = item.value();
      if (key == "name") continue;
      std::string part = value.is_object() ? key + "-" + [&] {
        std::string inner;
        for (const auto& [k, x] : value.items()) inner += (inner.empty() ? "" : ".") + k + value_text(x);
        return inner;
      }() : key + "-" + value_text(value);
      s += (s.empty() ? "" : "_") + part;
    }
    return s;
  }
  return dump_json(v);
}

std::string last_component(const std::string& key) {
  auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::string sweep_run_name(const Settings& settings) {
  std::string name;
  for (const auto& [key, value] : settings) {
    std::string label = last_component(key);
    for (const auto& [other, v] : settings)
      if (other != key && last_component(other) == label) label = key;
    name += (name.empty() ? "" : "__") + label + "-" + value_text(value);
  }
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  if (name.empty()) name = "run";
  if (name.size() > 96) {
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(name)));
    name = name.substr(0, 79) + "_" + hash;
  }
  return name;
}

bool is_run_name(const std::string& name) {
  if (name.empty() || name.size() > 96 || name == "." || name == "..") return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

std::vector<SweepRun> expand_sweep(const SweepSpec& spec) {
  // Each run is a directory and a training run: a spec of more is a mistake (and a product of
  // a few long axes would overflow).
  constexpr size_t kMaxRuns = 100000;
  size_t total = 1;
  for (const auto& a : spec.axes) {
    if (a.size() > kMaxRuns || total * a.size() > kMaxRuns)
      fail("axes: the sweep has more than ", kMaxRuns, " runs (the product of the axes' lengths)");
    total *= a.size();
  }
  std::vector<SweepRun> runs;
  runs.reserve(total);
  for (size_t r = 0; r < total; ++r) {
    // Mixed-radix digits of r, the last axis fastest.
    std::vector<size_t> step(spec.axes.size());
    size_t rest = r;
    for (size_t a = spec.axes.size(); a-- > 0;) {
      step[a] = rest % spec.axes[a].size();
      rest /= spec.axes[a].size();
    }
    SweepRun run;
    run.index = static_cast<int>(r);
    json doc = spec.base;
    Settings settings;
    for (size_t a = 0; a < spec.axes.size(); ++a)
      for (size_t k = 0; k < spec.axes[a].keys.size(); ++k) {
        const json& v = spec.axes[a].values[k][step[a]];
        set_path(doc, spec.axes[a].keys[k], v, "axes." + spec.axes[a].keys[k]);
        settings.emplace_back(spec.axes[a].keys[k], v);
      }
    run.name = sweep_run_name(settings);
    run.settings = json::object();
    for (const auto& [k, v] : settings) run.settings[k] = v;
    // A bad setting fails that run alone (vit_train reports it); the others still run.
    try {
      RunConfig cfg = run_from_json(doc);
      cfg.validate();
      run.config = to_json(cfg);
    } catch (const Error& e) {
      run.config = doc;
      run.invalid = e.what();
    }
    runs.push_back(std::move(run));
  }
  std::map<std::string, size_t> first;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto [at, fresh] = first.emplace(runs[i].name, i);
    if (!fresh)
      fail("runs ", at->second, " and ", i, " have the same name ", runs[i].name, " (",
           dump_json(runs[at->second].settings), " vs ", dump_json(runs[i].settings), ")");
  }
  return runs;
}

Shard parse_shard(const std::string& text, const std::string& flag) {
  Shard s;
  int used = 0;
  if (std::sscanf(text.c_str(), "%d/%d%n", &s.index, &s.count, &used) != 2 || used != static_cast<int>(text.size()) ||
      s.count < 1 || s.index < 0 || s.index >= s.count)
    fail(flag, " ", text, ": expected i/n with 0 <= i < n, e.g. 0/4");
  return s;
}

std::string run_directory(const std::string& sweep_dir, const std::string& name) {
  return join_path(join_path(sweep_dir, "runs"), name);
}

std::string run_lock_path(const std::string& run_dir) { return join_path(run_dir, "sweep.lock"); }

json RunState::to_json() const {
  json j{{"state", state}, {"attempts", attempts}, {"seconds", seconds}};
  if (!error.empty()) j["error"] = error;
  if (!device.empty()) j["device"] = device;
  return j;
}

RunState RunState::from_json(const json& j) {
  RunState s;
  s.state = j.value("state", "pending");
  s.attempts = j.value("attempts", 0);
  s.seconds = j.value("seconds", 0.0);
  s.error = j.value("error", "");
  s.device = j.value("device", "");
  return s;
}

RunState read_run_state(const std::string& run_dir) {
  RunState s;
  const std::string path = join_path(run_dir, "sweep_state.json");
  if (is_regular_file(path)) {
    try {
      s = RunState::from_json(read_json_file(path));
    } catch (const Error&) {
      // Written atomically, so unreadable means edited by hand: start the run's record afresh.
    }
  }
  if (is_regular_file(join_path(run_dir, "result.json"))) {
    s.state = "done";
    s.error.clear();
    return s;
  }
  if (is_directory(run_dir) && path_exists(run_lock_path(run_dir))) {
    int fd = try_lock(run_lock_path(run_dir));
    if (fd < 0) {
      s.state = "running";
      return s;
    }
    close_lock(fd);
  }
  // Recorded as running, but nobody holds its lock: its sweep was killed mid-run.
  if (s.state == "running") s.state = "interrupted";
  return s;
}

void write_run_state(const std::string& run_dir, const RunState& s) {
  atomic_write(join_path(run_dir, "sweep_state.json"), dump_json(s.to_json(), 2) + "\n");
}

json sweep_record(const SweepSpec& spec, const std::vector<SweepRun>& runs, const std::vector<json>& accounting,
                  const std::string& sweep_dir) {
  json rows = json::array();
  for (size_t i = 0; i < runs.size(); ++i) {
    const SweepRun& r = runs[i];
    const std::string dir = run_directory(sweep_dir, r.name);
    json row{{"index", r.index}, {"name", r.name}, {"settings", r.settings}, {"dir", "runs/" + r.name}};
    if (i < accounting.size()) row["accounting"] = accounting[i];
    row.update(read_run_state(dir).to_json());
    rows.push_back(std::move(row));
  }
  return json{{"schema", kSweepSchema}, {"updated", utc_timestamp()}, {"spec", spec.source},
              {"base", spec.base}, {"runs", rows}};
}

void write_sweep_record(const std::string& sweep_dir, const json& record) {
  atomic_write(join_path(sweep_dir, "sweep.json"), dump_json(record, 2) + "\n");
}

}  // namespace vitlab
