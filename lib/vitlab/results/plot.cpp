#include "vitlab/results/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include <unistd.h>

#include "vitlab/config.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/results/stats.h"
#include "vitlab/text.h"

namespace vitlab {

namespace {

struct Axis {
  std::string path;   // dotted path into a result
  std::string label;  // axis label
};

Axis axis_of(const std::string& name, const std::string& flag) {
  static const std::map<std::string, Axis> known{
      {"params", {"params.total", "parameters"}},
      {"attention_params", {"params.attention", "attention parameters (all layers)"}},
      {"flops", {"flops_per_image", "forward FLOPs per image"}},
      {"kv", {"kv_floats_per_token", "KV-cache floats per token"}},
      {"img_s", {"timing.images_per_s", "training images per second"}},
      {"top1", {"metrics.top1", "test top-1 (%)"}},
      {"top5", {"metrics.top5", "test top-5 (%)"}},
      {"loss", {"metrics.loss", "test loss"}},
      {"best_top1", {"metrics.best_top1", "best validation top-1 (%)"}},
  };
  auto it = known.find(name);
  if (it != known.end()) return it->second;
  if (name.empty() || name.find_first_of(" \t") != std::string::npos) fail(flag, " '", name, "': not a metric");
  return {name, name};
}

const json* find_path(const json& j, const std::string& path) {
  const json* node = &j;
  for (const auto& key : split(path, '.')) {
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
  }
  return node;
}

double number_at(const json& r, const Axis& a, const std::string& flag) {
  const json* v = find_path(r, a.path);
  if (!v || !v->is_number())
    fail(flag, " ", a.path, ": not a number in the results of run '", r.value("run_id", "?"), "'");
  return v->get<double>();
}

std::string group_of(const json& r, const std::string& group) {
  std::string out;
  for (const auto& key : split(group, ',')) {
    const std::string path = key == "attention" ? "model.attention.name" : key == "pos" ? "model.pos" : key;
    const json* v = find_path(r, path);
    if (!v) fail("--group ", key, ": no ", path, " in the results of run '", r.value("run_id", "?"), "'");
    out += (out.empty() ? "" : " ") + (v->is_string() ? v->get<std::string>() : dump_json(*v));
  }
  return out;
}

// What makes two runs the same setting: everything but the seed and where and how it ran.
std::string setting_key(const json& r) {
  json train = r.value("train", json::object());
  train.erase("seed");
  erase_execution_keys(train);
  return dump_json(json{{"model", r.value("model", json())}, {"data", r.value("data", json())}, {"train", train}});
}

bool lower_is_better(const std::string& name) { return name == "loss" || name.find("loss") != std::string::npos; }

void find_results(const std::string& dir, std::vector<std::string>& out, int depth) {
  if (depth > 6) return;
  for (const auto& name : list_directory(dir)) {
    const std::string p = join_path(dir, name);
    if (name == "result.json" && is_regular_file(p)) out.push_back(p);
    else if (is_directory(p) && name != "checkpoint" && name.find(".tmp") == std::string::npos)
      find_results(p, out, depth + 1);
  }
}

std::string gp_string(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::vector<json> load_results(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    if (is_directory(p)) {
      const size_t before = files.size();
      find_results(p, files, 0);
      if (files.size() == before) fail(p, ": no result.json below this directory");
    } else if (is_regular_file(p)) {
      files.push_back(p);
    } else {
      fail(p, path_exists(p) ? ": not a regular file or a directory" : ": no such file or directory");
    }
  }
  std::vector<json> out;
  for (const auto& f : files) {
    json r = read_json_file(f);
    if (!r.is_object() || !r.contains("schema") || r["schema"] != "vitlab.run/1")
      fail(f, ": not a vitlab result (schema vitlab.run/1)");
    // What the plot reads beside its axes (which say themselves what they miss).
    for (const char* key : {"model", "data", "train"})
      if (r.contains(key) && !r[key].is_object()) fail(f, ": ", key, ": expected an object");
    if (r.contains("run_id") && !r["run_id"].is_string()) fail(f, ": run_id: expected a string");
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<PlotPoint> plot_points(const std::vector<json>& results, const PlotOptions& opt) {
  const Axis ax = axis_of(opt.x, "--x"), ay = axis_of(opt.y, "--y");
  std::vector<std::string> keys;
  std::map<std::string, std::vector<const json*>> by_setting;
  for (const auto& r : results) {
    const std::string k = setting_key(r);
    if (!by_setting.count(k)) keys.push_back(k);
    by_setting[k].push_back(&r);
  }
  std::vector<PlotPoint> points;
  for (const auto& k : keys) {
    const auto& runs = by_setting[k];
    PlotPoint p;
    p.group = group_of(*runs.front(), opt.group);
    p.y_min = INFINITY, p.y_max = -INFINITY;
    std::vector<double> ys;
    for (const json* r : runs) {
      const double x = number_at(*r, ax, "--x"), y = number_at(*r, ay, "--y");
      ys.push_back(y);
      p.x += x / runs.size();
      p.y += y / runs.size();
      p.y_min = std::min(p.y_min, y), p.y_max = std::max(p.y_max, y);
      p.label += (p.label.empty() ? "" : " ") + r->value("run_id", "?");
    }
    p.seeds = static_cast<int>(runs.size());
    p.y_se = sample_std(ys) / std::sqrt(static_cast<double>(p.seeds));
    if (opt.log_x && p.x <= 0) fail("--x ", opt.x, ": ", p.x, " cannot go on a log scale (run ", p.label, ")");
    points.push_back(std::move(p));
  }
  // Groups by their best y, best first (the legend then lists the series top to bottom as they
  // lie in the plot), ties by name; points of a group by x.
  const bool lower = lower_is_better(opt.y);
  std::map<std::string, double> best;
  for (const auto& p : points) {
    auto it = best.find(p.group);
    if (it == best.end()) best[p.group] = p.y;
    else it->second = lower ? std::min(it->second, p.y) : std::max(it->second, p.y);
  }
  std::stable_sort(points.begin(), points.end(), [&](const PlotPoint& a, const PlotPoint& b) {
    if (a.group != b.group) {
      const double ba = best[a.group], bb = best[b.group];
      if (ba != bb) return lower ? ba < bb : ba > bb;
      return a.group < b.group;
    }
    return a.x < b.x;
  });
  return points;
}

std::vector<size_t> pareto_front(const std::vector<PlotPoint>& points, const PlotOptions& opt) {
  const double sx = opt.x == "img_s" ? -1 : 1;      // +1: lower x is better
  const double sy = lower_is_better(opt.y) ? -1 : 1;  // +1: higher y is better
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool beaten = false;
    for (size_t j = 0; j < points.size() && !beaten; ++j) {
      const bool no_worse = sx * points[j].x <= sx * points[i].x && sy * points[j].y >= sy * points[i].y;
      const bool better = sx * points[j].x < sx * points[i].x || sy * points[j].y > sy * points[i].y;
      beaten = j != i && no_worse && better;
    }
    if (!beaten) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) { return points[a].x < points[b].x; });
  return front;
}

std::string draw_plot(const std::vector<PlotPoint>& points, const PlotOptions& opt) {
  if (points.empty()) fail("no results to plot");
  const std::string ext = extension_lower(opt.out);
  if (ext != ".png" && ext != ".svg") fail("--out ", opt.out, ": the picture must end in .png or .svg");
  if (opt.bars != "minmax" && opt.bars != "se") fail("--bars ", opt.bars, ": expected minmax or se");
  if (find_in_path("gnuplot").empty()) fail("gnuplot not found: install gnuplot-nox (bash scripts/setup.sh)");
  const bool se = opt.bars == "se";
  const Axis ax = axis_of(opt.x, "--x"), ay = axis_of(opt.y, "--y");

  // The data: one gnuplot index block per group, then the Pareto front.
  std::vector<std::string> groups;
  for (const auto& p : points)
    if (groups.empty() || groups.back() != p.group) groups.push_back(p.group);
  std::string d = "# vit_plot: x = " + ax.path + ", y = " + ay.path + " (mean over seeds, " +
                  (se ? "minus and plus its standard error" : "min and max") + ")\n";
  char line[512];
  for (size_t g = 0; g < groups.size(); ++g) {
    if (g) d += "\n\n";
    d += "# group: " + groups[g] + (se ? "\n# x y y-se y+se seeds runs\n" : "\n# x y y_min y_max seeds runs\n");
    for (const auto& p : points)
      if (p.group == groups[g]) {
        std::snprintf(line, sizeof line, "%.10g %.6g %.6g %.6g %d ", p.x, p.y, se ? p.y - p.y_se : p.y_min,
                      se ? p.y + p.y_se : p.y_max, p.seeds);
        d += line + gp_string(p.label) + "\n";
      }
  }
  d += "\n\n# Pareto front\n# x y\n";
  for (size_t i : pareto_front(points, opt)) {
    std::snprintf(line, sizeof line, "%.10g %.6g\n", points[i].x, points[i].y);
    d += line;
  }

  // The script: log x, one series per group with its bars, the front as a dashed staircase.
  std::string s;
  if (!opt.title.empty()) s += "set title " + gp_string(opt.title) + "\n";
  s += "set xlabel " + gp_string(ax.label) + "\nset ylabel " + gp_string(ay.label) + "\n";
  if (opt.log_x) s += "set logscale x\nset format x '%.0s%c'\n";
  s += "set grid xtics mxtics ytics lc rgb '#dddddd'\nset key outside right top box opaque\n";
  // The x range hugs the data with a margin, so no point sits on the frame.
  double lo = points.front().x, hi = lo;
  for (const auto& p : points) lo = std::min(lo, p.x), hi = std::max(hi, p.x);
  const double pad = opt.log_x ? 0 : 0.06 * std::max(hi - lo, std::abs(hi) * 0.1 + 1e-12);
  std::snprintf(line, sizeof line, "set xrange [%.10g:%.10g]\n", opt.log_x ? lo / 1.3 : lo - pad,
                opt.log_x ? hi * 1.3 : hi + pad);
  s += line;
  s += std::string("set label 1 'mean over seeds; bars: ") + (se ? "standard error" : "min to max") +
       "' at graph 0, graph -0.13 font ',9'\n";
  s += "set bmargin 5\nset offsets 0, 0, graph 0.05, graph 0.05\n";
  s += "plot \\\n";
  const std::string dat = gp_string(base_name(data_path(opt.out)));
  const int types[] = {7, 5, 9, 11, 13, 15, 4, 6, 8, 10, 12, 14};
  for (size_t g = 0; g < groups.size(); ++g) {
    std::snprintf(line, sizeof line, "  %s index %zu using 1:2:3:4 with yerrorlines lw 2 pt %d ps 1.3 title %s, \\\n",
                  dat.c_str(), g, types[g % 12], gp_string(groups[g]).c_str());
    s += line;
  }
  std::snprintf(line, sizeof line, "  %s index %zu using 1:2 with %s dt 2 lw 1.5 lc rgb 'black' title 'Pareto front'\n",
                dat.c_str(), groups.size(), opt.x == "img_s" ? "lines" : "steps");
  s += line;
  return render_gnuplot(opt.out, d, s);
}

std::string data_path(const std::string& out) { return out.substr(0, out.size() - extension_lower(out).size()) + ".dat"; }

std::string render_gnuplot(const std::string& out, const std::string& data, const std::string& script) {
  const std::string ext = extension_lower(out);
  if (ext != ".png" && ext != ".svg") fail("--out ", out, ": the picture must end in .png or .svg");
  const std::string gnuplot = find_in_path("gnuplot");
  if (gnuplot.empty()) fail("gnuplot not found: install gnuplot-nox (bash scripts/setup.sh)");
  const std::string stem = out.substr(0, out.size() - ext.size());
  const std::string gp = stem + ".gp", tmp_out = stem + ".tmp-" + std::to_string(::getpid()) + ext;
  std::string s = ext == ".png" ? "set terminal pngcairo size 1000,650 enhanced font 'sans,11'\n"
                                : "set terminal svg size 1000,650 dynamic enhanced font 'sans,11'\n";
  s += "set output " + gp_string(base_name(tmp_out)) + "\n";
  // Ten distinguishable colours that stay dark enough on white (no yellow).
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                           "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
  for (int i = 0; i < 10; ++i) s += "set linetype " + std::to_string(i + 1) + " lc rgb '" + colours[i] + "'\n";
  s += "set linetype cycle 10\n" + script;

  atomic_write(data_path(out), data);
  atomic_write(gp, s);
  // gnuplot runs in the picture's directory so the script stays relocatable (relative names).
  const std::string dir = parent_path(out);
  const std::string log = stem + ".gnuplot.log";
  ChildExit e = run_program({"/bin/sh", "-c", "cd \"$0\" && exec \"$1\" \"$2\"", dir, gnuplot, base_name(gp)}, log);
  const std::string message = is_regular_file(log) ? read_text(log) : "";
  remove_tree(log);
  if (!e.ok() || !is_regular_file(tmp_out)) {
    remove_tree(tmp_out);
    fail("gnuplot failed on ", gp, " (", e.describe(), "): ", message.substr(0, message.find('\n')));
  }
  if (std::rename(tmp_out.c_str(), out.c_str()) != 0) fail("--out ", out, ": cannot rename ", tmp_out);
  // The kept script names the final picture, so running it by hand redraws in place.
  atomic_write(gp, s.replace(s.find(base_name(tmp_out)), base_name(tmp_out).size(), base_name(out)));
  return out;
}

}  // namespace vitlab
