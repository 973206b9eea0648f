// vit_ranks: the ranks each attention layer of an MHA checkpoint actually uses.

#include "vitlab/analysis/ranks.h"
#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/cli.h"
#include "vitlab/device.h"
#include "vitlab/io/files.h"
#include "vitlab/results/run_record.h"
#include "vitlab/train/checkpoint.h"

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Per layer of an MHA checkpoint: the singular values of each mode of the attention tensors T_qk "
               "(head, query, key) and T_ov (head, value, output), their effective rank and the ranks holding "
               "90 / 99 / 99.9% of the energy. Writes JSON (schema vitlab.ranks/1) and optionally a plot."};
  std::string checkpoint, out, plot;
  int threads = 0;
  app.add_option("--checkpoint", checkpoint, "vitlab checkpoint directory (or its model.safetensors)")->required();
  app.add_option("--out", out, "Write the JSON here")->required();
  app.add_option("--plot", plot, "Also draw effective and 99%-energy ranks against depth (FILE.png or FILE.svg)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->check(vitlab::cli::integer(0));
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_ranks", argc, argv);

  return vitlab::run_app("vit_ranks", [&] {
    vitlab::load_plugins(plugins);
    vitlab::configure_threads(threads);
    vitlab::ViT model = vitlab::load_model(checkpoint);
    vitlab::json report = vitlab::rank_report(model);
    report["checkpoint"] = checkpoint;
    report["created"] = vitlab::utc_timestamp();
    vitlab::atomic_write(out, vitlab::dump_json(report, 1) + "\n");
    std::printf("%5s  %-23s %-23s %-23s | %-23s %-23s %-23s\n", "layer", "T_qk head", "T_qk query", "T_qk key",
                "T_ov head", "T_ov value", "T_ov output");
    std::printf("%5s  %-23s\n", "", "(eff. rank, r99 / size)");
    for (const auto& l : report["layers"]) {
      std::printf("%5d ", l["layer"].get<int>());
      for (const char* t : {"qk", "ov"})
        for (const char* m : {"head", t[0] == 'q' ? "query" : "value", t[0] == 'q' ? "key" : "output"}) {
          const auto& s = l[t][m];
          char cell[32];
          std::snprintf(cell, sizeof cell, "%6.1f, %4d / %-4d", s["effective_rank"].get<double>(),
                        s["rank_99"].get<int>(), s["size"].get<int>());
          std::printf(" %-23s%s", cell, std::string(t) == "qk" && std::string(m) == "key" ? "|" : "");
        }
      std::printf("\n");
    }
    std::printf("ranks: %s\n", out.c_str());
    if (!plot.empty()) std::printf("plot: %s\n", vitlab::draw_rank_plot(report, plot).c_str());
    return 0;
  });
}
