#pragma once
// Accuracy-versus-cost plots of result files: one series per group (e.g. the attention
// variant), seeds of the same setting merged into their mean and range, the Pareto front
// marked. Drawn by gnuplot; the .dat and .gp files stay beside the picture for editing.
#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

struct PlotOptions {
  std::string x = "attention_params";  // params | attention_params | flops | kv | img_s | a dotted path
  std::string y = "top1";              // top1 | top5 | loss | best_top1 | a dotted path
  std::string group = "attention";     // attention | pos | dotted paths, comma-separated
  std::string out;                     // FILE.png or FILE.svg
  std::string title;
  bool log_x = true;
  std::string bars = "minmax";         // error bars over seeds: minmax (min to max) | se (mean +- standard error)
};

struct PlotPoint {
  std::string group;
  double x = 0;        // mean over seeds
  double y = 0;        // mean over seeds
  double y_min = 0, y_max = 0;
  double y_se = 0;     // standard error of the mean over seeds (sample std / sqrt(n)); 0 for one seed
  int seeds = 0;
  std::string label;   // the run names merged into this point
};

// Result files, or directories searched (recursively) for result.json.
std::vector<json> load_results(const std::vector<std::string>& paths);
// One point per distinct setting (seeds merged), grouped; groups by their best y, best first.
std::vector<PlotPoint> plot_points(const std::vector<json>& results, const PlotOptions& opt);
// Indices of the points no other point beats on both axes (y higher is better unless it is a
// loss; x lower is better unless it is img/s), in increasing x.
std::vector<size_t> pareto_front(const std::vector<PlotPoint>& points, const PlotOptions& opt);
// Writes FILE.dat, FILE.gp and the picture (through gnuplot). Returns the picture's path.
std::string draw_plot(const std::vector<PlotPoint>& points, const PlotOptions& opt);

// Draws `out` (FILE.png or FILE.svg) with gnuplot: `data` goes to FILE.dat, the terminal and
// output lines plus `script` (the plot commands, naming FILE.dat relatively) to FILE.gp, both
// kept beside the picture. Failures name the file; the picture appears whole or not at all.
std::string render_gnuplot(const std::string& out, const std::string& data, const std::string& script);
// FILE.dat for the picture FILE.png / FILE.svg.
std::string data_path(const std::string& out);

}  // namespace vitlab
