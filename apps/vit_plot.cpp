// vit_plot: accuracy versus parameters (or FLOPs, KV cache, img/s) of result files, one series
// per group, seeds merged, the Pareto front marked; drawn with gnuplot.

#include "vitlab/app.h"
#include "vitlab/cli.h"
#include "vitlab/results/plot.h"

int main(int argc, char** argv) {
  CLI::App app{"Plot results (result.json files, run or sweep directories) with gnuplot: one series per group, "
               "mean over seeds with min-max or standard-error bars, the Pareto front dashed. Writes FILE.png|.svg, FILE.dat and FILE.gp."};
  std::vector<std::string> inputs;
  vitlab::PlotOptions opt;
  bool linear = false;
  app.add_option("results", inputs, "result.json files or directories holding them")->required();
  app.add_option("--x", opt.x, "params, attention_params, flops, kv, img_s, or a dotted path into the results")
      ->capture_default_str();
  app.add_option("--y", opt.y, "top1, top5, loss, best_top1, or a dotted path")->capture_default_str();
  app.add_option("--group", opt.group, "One series per value of: attention, pos, or dotted paths (comma-separated)")
      ->capture_default_str();
  app.add_option("--out", opt.out, "The picture: FILE.png or FILE.svg")->required();
  app.add_option("--title", opt.title, "Title above the plot");
  app.add_flag("--linear-x", linear, "Linear x axis instead of log");
  app.add_option("--bars", opt.bars, "Error bars over seeds: minmax (min to max) or se (standard error of the mean)")
      ->check(CLI::IsMember({"minmax", "se"}))
      ->capture_default_str();
  VITLAB_CLI_PARSE(app, "vit_plot", argc, argv);

  return vitlab::run_app("vit_plot", [&] {
    opt.log_x = !linear;
    const auto results = vitlab::load_results(inputs);
    const auto points = vitlab::plot_points(results, opt);
    vitlab::draw_plot(points, opt);
    std::printf("wrote %s (%zu results, %zu points); Pareto front:", opt.out.c_str(), results.size(), points.size());
    for (size_t i : vitlab::pareto_front(points, opt)) std::printf(" %s@%.4g", points[i].group.c_str(), points[i].x);
    std::printf("\n");
    return 0;
  });
}
