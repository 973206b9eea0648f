#include "vitlab/results/summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/results/stats.h"
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

std::string signed_fixed(double v) { return (v >= 0 ? "+" : "") + fixed(v, 2); }

// The attention variant of a setting: model.attention's name ("mha" or {"name": "tucker", ...}).
std::string variant_name(const json& attention) {
  if (attention.is_string()) return attention.get<std::string>();
  if (attention.is_object() && attention.contains("name") && attention["name"].is_string())
    return attention["name"].get<std::string>();
  return plain(attention);
}

// One row of the over-seeds table: the runs of one setting, their done top-1 by seed.
struct SeedGroup {
  std::vector<const SummaryRow*> members;
  std::string variant;                 // model.attention's name
  std::map<std::string, double> top1;  // seed (as JSON) -> test top-1
  std::vector<double> img_s;
  size_t reference = 0;                // the group compared against
  std::optional<PairedDifference> paired;
};

std::string paired_cell(const PairedDifference& d) {
  return signed_fixed(d.mean) + " [" + signed_fixed(d.lo) + ", " + signed_fixed(d.hi) + "], n " + std::to_string(d.n);
}

// The per-setting table: runs that differ only in their seed merged into one row, top-1 as
// mean +- sample standard deviation (n - 1) of the done runs and its standard error. Each row's
// reference is the first row with the same settings but model.attention (MHA, listed first in
// the attention specs, at the same width), or the first row without an attention axis; "vs ref"
// is the attention budget against it, and the paired difference matches the two rows' runs by
// seed (same data order and augmentation draws): mean, 95% t interval, one-sided t test against
// a loss of kMargin points. Then, per variant, the smallest budget that test does not reject.
constexpr double kMargin = 0.5;

std::string over_seeds_markdown(const std::vector<SummaryRow>& rows, const std::vector<std::string>& keys) {
  std::vector<std::string> shown, seeds;
  for (const auto& k : keys) (is_seed_key(k) ? seeds : shown).push_back(k);
  const bool by_attention = std::find(shown.begin(), shown.end(), "model.attention") != shown.end();
  std::vector<std::string> order, context;  // context: the settings but model.attention
  std::map<std::string, SeedGroup> groups;
  for (const auto& r : rows) {
    json id = json::object(), around = json::object();
    for (const auto& k : shown) {
      id[k] = r.settings.value(k, json());
      if (k != "model.attention") around[k] = id[k];
    }
    const std::string key = dump_json(id);
    if (!groups.count(key)) order.push_back(key), context.push_back(by_attention ? dump_json(around) : "");
    SeedGroup& g = groups[key];
    if (g.members.empty()) g.variant = variant_name(r.settings.value("model.attention", json()));
    g.members.push_back(&r);
    json seed = json::object();
    for (const auto& k : seeds) seed[k] = r.settings.value(k, json());
    const json t = metric(r, "metrics", "top1"), v = metric(r, "timing", "images_per_s");
    if (t.is_number()) g.top1[dump_json(seed)] = t.get<double>();
    if (v.is_number()) g.img_s.push_back(v.get<double>());
  }
  for (size_t i = 0; i < order.size(); ++i) {
    SeedGroup& g = groups[order[i]];
    g.reference = static_cast<size_t>(std::find(context.begin(), context.end(), context[i]) - context.begin());
    if (g.reference == i) continue;
    const SeedGroup& ref = groups[order[g.reference]];
    std::vector<double> differences;
    for (const auto& [seed, top1] : g.top1)
      if (ref.top1.count(seed)) differences.push_back(top1 - ref.top1.at(seed));
    if (differences.size() >= 2) g.paired = paired_difference(differences);
  }

  std::string out = "|", rule = "|";
  for (const auto& k : shown) out += " " + k + " |", rule += "---|";
  out += " runs done | params | attn params | vs ref | KV floats/token | top-1 mean +- std | s.e. | "
         "paired diff vs ref [95% CI] | below -" + fixed(kMargin, 1) + "? | img/s |\n";
  out += rule + "---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n";
  auto attention_params = [&](const SeedGroup& g) { return number(*g.members.front(), "params", "attention"); };
  auto ratio = [&](const SeedGroup& g) {
    const json a = attention_params(g), r = attention_params(groups[order[g.reference]]);
    return a.is_number() && r.is_number() && r.get<double>() > 0 ? significant(a.get<double>() / r.get<double>()) : "";
  };
  for (size_t i = 0; i < order.size(); ++i) {
    const SeedGroup& g = groups[order[i]];
    const SummaryRow& r0 = *g.members.front();
    std::vector<double> top1;
    for (const auto& [seed, t] : g.top1) top1.push_back(t);
    std::string acc, se;
    if (!top1.empty()) acc = fixed(mean_of(top1), 2);
    if (top1.size() > 1) {
      const double sd = sample_std(top1);
      acc += " +- " + fixed(sd, 2);
      se = fixed(sd / std::sqrt(static_cast<double>(top1.size())), 2);
    }
    std::string paired = g.reference == i ? "reference" : "", below;
    if (g.paired) paired = paired_cell(*g.paired), below = g.paired->upper < -kMargin ? "yes" : "no";
    out += "|";
    for (const auto& k : shown) out += " `" + plain(r0.settings.value(k, json())) + "` |";
    out += " " + std::to_string(top1.size()) + "/" + std::to_string(g.members.size()) + " | " +
           grouped(number(r0, "params", "total")) + " | " + grouped(attention_params(g)) + " | " + ratio(g) + " | " +
           grouped(number(r0, nullptr, "kv_floats_per_token")) + " | " + acc + " | " + se + " | " + paired + " | " +
           below + " | " + (g.img_s.empty() ? "" : fixed(mean_of(g.img_s), 0)) + " |\n";
  }
  if (!by_attention) return out;

  // Per variant (and other settings), the smallest budget the test does not put below the margin.
  out += "\nPaired by seed; \"below -" + fixed(kMargin, 1) + "?\": a one-sided paired t test at 5% (H1: the mean "
         "difference to the reference is below -" + fixed(kMargin, 1) + " points) rejects, i.e. the one-sided 95% "
         "upper bound of the difference is below -" + fixed(kMargin, 1) + ".\n\n"
         "### Smallest attention budget not significantly below the reference by " + fixed(kMargin, 1) + " points\n\n";
  std::string table;
  std::vector<std::string> seen;
  for (size_t i = 0; i < order.size(); ++i) {
    const SeedGroup& g = groups[order[i]];
    const std::string id = context[i] + "/" + g.variant;
    if (g.reference == i || std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    const SeedGroup* best = nullptr;
    for (size_t j = 0; j < order.size(); ++j) {
      const SeedGroup& h = groups[order[j]];
      if (context[j] != context[i] || h.reference == j || !h.paired || h.paired->upper < -kMargin ||
          h.variant != g.variant)
        continue;
      const json a = attention_params(h);
      if (a.is_number() && (!best || a.get<double>() < attention_params(*best).get<double>())) best = &h;
    }
    json around = json::parse(context[i]);
    std::string where;
    for (const auto& [k, v] : around.items()) where += (where.empty() ? "" : ", ") + k + " " + plain(v);
    table += "| " + where + " | " + g.variant + " | ";
    if (best)
      table += "`" + plain(best->members.front()->settings.value("model.attention", json())) + "` | " +
               grouped(attention_params(*best)) + " | " + ratio(*best) + " | " + paired_cell(*best->paired) + " | " +
               signed_fixed(best->paired->upper) + " |\n";
    else
      table += "none (no budget with 2 or more paired seeds passes) | | | | |\n";
  }
  out += "| settings | variant | smallest budget | attn params | vs ref | paired diff [95% CI] | one-sided upper bound |\n"
         "|---|---|---|---:|---:|---|---:|\n" + table;
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
