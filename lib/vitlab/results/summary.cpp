#include "vitlab/results/summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/results/sweep.h"

namespace vitlab {

namespace {

// How far a run got, for merging folders: the folder where it got furthest wins.
int progress(const std::string& state) {
  static const char* order[] = {"pending", "interrupted", "running", "failed", "done"};
  for (int i = 0; i < 5; ++i)
    if (state == order[i]) return i;
  return -1;
}

}  // namespace

std::vector<SummaryRow> collect_summary(const std::vector<std::string>& dirs) {
  std::vector<SummaryRow> rows;
  std::map<std::string, size_t> at;
  for (const auto& dir : dirs) {
    const std::string path = join_path(dir, "sweep.json");
    if (!is_regular_file(path)) fail(dir, ": not a sweep directory (no sweep.json)");
    const json record = read_json_file(path);
    if (!record.is_object() || record.value("schema", "") != kSweepSchema) fail(path, ": schema is not ", kSweepSchema);
    if (!record.contains("runs") || !record["runs"].is_array()) fail(path, ": runs: expected a list");
    for (const auto& r : record["runs"]) {
      SummaryRow row;
      try {
        row.name = r.at("name").get<std::string>();
        row.settings = r.value("settings", json::object());
        row.accounting = r.value("accounting", json());
      } catch (const json::exception& e) {
        fail(path, ": runs: ", json_error_text(e));
      }
      if (!is_run_name(row.name)) fail(path, ": runs: '", row.name, "' is not a run name");
      const std::string run_dir = run_directory(dir, row.name);
      const RunState s = read_run_state(run_dir);
      row.state = s.state;
      row.error = s.error;
      if (s.state == "done") row.result = read_json_file(join_path(run_dir, "result.json"));
      auto found = at.find(row.name);
      if (found == at.end()) {
        at[row.name] = rows.size();
        rows.push_back(std::move(row));
      } else if (progress(row.state) > progress(rows[found->second].state)) {
        rows[found->second] = std::move(row);
      }
    }
  }
  return rows;
}

namespace {

std::vector<std::string> setting_keys(const std::vector<SummaryRow>& rows) {
  std::vector<std::string> keys;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.settings.items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  return keys;
}

std::string plain(const json& v) { return v.is_string() ? v.get<std::string>() : v.is_null() ? "" : dump_json(v); }

// An accounting field (params, FLOPs, KV floats): the result and the sweep's accounting have the
// same layout; the result wins when the run is done.
json number(const SummaryRow& r, const char* section, const char* key) {
  const json* src = nullptr;
  if (!r.result.is_null()) src = &r.result;
  else if (!r.accounting.is_null()) src = &r.accounting;
  if (!src) return json();
  const json& base = section ? src->value(section, json()) : *src;
  if (!base.is_object() || !base.contains(key)) return json();
  return base[key];
}

json metric(const SummaryRow& r, const char* section, const char* key) {
  if (r.result.is_null() || !r.result.contains(section) || !r.result[section].contains(key)) return json();
  return r.result[section][key];
}

std::string csv_cell(std::string s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string fixed(const json& v, int digits) {
  if (!v.is_number()) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v.get<double>());
  return buf;
}

std::string significant(double v) {  // 4 significant digits: 0.01564, 9.198
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string grouped(const json& v) {  // 1234567 -> 1,234,567
  if (!v.is_number()) return "";
  std::string s = std::to_string(static_cast<long long>(v.get<double>()));
  for (int i = static_cast<int>(s.size()) - 3; i > (s[0] == '-' ? 1 : 0); i -= 3) s.insert(i, ",");
  return s;
}

}  // namespace

std::string summary_csv(const std::vector<SummaryRow>& rows) {
  const auto keys = setting_keys(rows);
  std::string out = "run";
  for (const auto& k : keys) out += "," + csv_cell(k);
  out += ",state,params,attention_params,attention_params_per_layer,flops_per_image,kv_floats_per_token,"
         "top1,top5,loss,best_val_top1,images_per_s,train_seconds,error\n";
  for (const auto& r : rows) {
    out += csv_cell(r.name);
    for (const auto& k : keys) out += "," + csv_cell(r.settings.contains(k) ? plain(r.settings[k]) : "");
    out += "," + r.state;
    for (const char* k : {"total", "attention", "attention_per_layer"}) out += "," + plain(number(r, "params", k));
    out += "," + plain(number(r, nullptr, "flops_per_image")) + "," + plain(number(r, nullptr, "kv_floats_per_token"));
    for (const char* k : {"top1", "top5", "loss", "best_top1"}) out += "," + plain(metric(r, "metrics", k));
    out += "," + plain(metric(r, "timing", "images_per_s")) + "," + plain(metric(r, "timing", "train_seconds"));
    out += "," + csv_cell(r.error) + "\n";
  }
  return out;
}

namespace {

bool is_seed_key(const std::string& k) {
  return k == "seed" || (k.size() > 5 && k.compare(k.size() - 5, 5, ".seed") == 0);
}

// The per-setting table: runs that differ only in their seed merged into one row, top-1 as
// mean +- sample standard deviation (n - 1) of the done runs; "vs first" is the attention
// budget against the first row's (the sweep's first setting, MHA in the issue-8 specs).
std::string over_seeds_markdown(const std::vector<SummaryRow>& rows, const std::vector<std::string>& keys) {
  std::vector<std::string> shown;
  for (const auto& k : keys)
    if (!is_seed_key(k)) shown.push_back(k);
  std::vector<std::string> order;
  std::map<std::string, std::vector<const SummaryRow*>> groups;
  for (const auto& r : rows) {
    json id = json::object();
    for (const auto& k : shown) id[k] = r.settings.value(k, json());
    const std::string key = dump_json(id);
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(&r);
  }
  std::string out = "|";
  std::string rule = "|";
  for (const auto& k : shown) out += " " + k + " |", rule += "---|";
  out += " runs done | params | attn params | vs first | KV floats/token | top-1 mean +- std | img/s |\n";
  out += rule + "---:|---:|---:|---:|---:|---:|---:|\n";
  double first_attention = 0;
  for (const auto& key : order) {
    const auto& members = groups[key];
    const SummaryRow& r0 = *members.front();
    std::vector<double> top1, img_s;
    for (const SummaryRow* r : members) {
      const json t = metric(*r, "metrics", "top1"), v = metric(*r, "timing", "images_per_s");
      if (t.is_number()) top1.push_back(t.get<double>());
      if (v.is_number()) img_s.push_back(v.get<double>());
    }
    auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v) s += x;
      return s / static_cast<double>(v.size());
    };
    std::string acc;
    if (!top1.empty()) {
      const double m = mean(top1);
      acc = fixed(m, 2);
      if (top1.size() > 1) {
        double ss = 0;
        for (double x : top1) ss += (x - m) * (x - m);
        acc += " +- " + fixed(std::sqrt(ss / static_cast<double>(top1.size() - 1)), 2);
      }
    }
    const json attention = number(r0, "params", "attention");
    std::string ratio;
    if (attention.is_number()) {
      if (first_attention == 0) first_attention = attention.get<double>();
      if (first_attention > 0) ratio = significant(attention.get<double>() / first_attention);
    }
    out += "|";
    for (const auto& k : shown) out += " `" + plain(r0.settings.value(k, json())) + "` |";
    out += " " + std::to_string(top1.size()) + "/" + std::to_string(members.size()) + " | " +
           grouped(number(r0, "params", "total")) + " | " + grouped(attention) + " | " + ratio + " | " +
           grouped(number(r0, nullptr, "kv_floats_per_token")) + " | " + acc + " | " +
           (img_s.empty() ? "" : fixed(mean(img_s), 0)) + " |\n";
  }
  return out;
}

}  // namespace

std::string summary_markdown(const std::vector<SummaryRow>& rows) {
  const auto keys = setting_keys(rows);
  std::string out;
  if (std::any_of(keys.begin(), keys.end(), is_seed_key))
    out += "## Over seeds\n\n" + over_seeds_markdown(rows, keys) + "\n## Runs\n\n";
  out += "| run |";
  std::string rule = "|---|";
  for (const auto& k : keys) out += " " + k + " |", rule += "---|";
  out += " state | params | attn params | GFLOP/img | KV floats/token | top-1 | loss | img/s |\n";
  rule += "---|---:|---:|---:|---:|---:|---:|---:|\n";
  out += rule;
  for (const auto& r : rows) {
    out += "| " + r.name + " |";
    for (const auto& k : keys) {
      std::string v = r.settings.contains(k) ? plain(r.settings[k]) : "";
      out += " `" + v + "` |";
    }
    std::string state = r.state;
    if (!r.error.empty()) state += ": " + r.error;
    for (char& c : state)
      if (c == '|') c = '/';
    const json flops = number(r, nullptr, "flops_per_image");
    out += " " + state + " | " + grouped(number(r, "params", "total")) + " | " +
           grouped(number(r, "params", "attention")) + " | " +
           (flops.is_number() ? significant(flops.get<double>() / 1e9) : "") + " | " +
           grouped(number(r, nullptr, "kv_floats_per_token")) + " | " + fixed(metric(r, "metrics", "top1"), 2) + " | " +
           fixed(metric(r, "metrics", "loss"), 4) + " | " + fixed(metric(r, "timing", "images_per_s"), 0) + " |\n";
  }
  return out;
}

void write_summary(const std::string& dir, const std::vector<SummaryRow>& rows) {
  ensure_directory(dir, "--out");
  atomic_write(join_path(dir, "summary.csv"), summary_csv(rows));
  atomic_write(join_path(dir, "summary.md"), summary_markdown(rows));
}

}  // namespace vitlab
