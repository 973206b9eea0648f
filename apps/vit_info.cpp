// vit_info: parameter breakdown and forward FLOPs of a model config, without training.
#include <CLI/CLI.hpp>

#include "vitlab/analysis/accounting.h"
#include "vitlab/app.h"

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Show a model's parameters per component and its forward FLOPs per image."};
  std::string config;
  std::vector<std::string> sets;
  bool as_json = false;
  app.add_option("--config", config, "Run config JSON (its model section is used)")->check(CLI::ExistingFile);
  app.add_option("--set", sets, "Override a config value, e.g. --set model.preset=vit-tiny (repeatable)")->take_all();
  app.add_flag("--json", as_json, "Print JSON instead of a table");
  CLI11_PARSE(app, argc, argv);

  return vitlab::run_app("vit_info", [&] {
    const vitlab::RunConfig cfg = vitlab::load_run_config(config, sets);
    vitlab::ViT model(cfg.model);
    vitlab::json acct = vitlab::accounting_json(model);
    if (as_json) {
      acct["model"] = vitlab::to_json(cfg.model);
      std::printf("%s\n", acct.dump(2).c_str());
      return 0;
    }
    const auto& m = cfg.model;
    const auto& p = acct["params"];
    std::printf("model: dim %d, depth %d, heads %d x %d, patch %d on %dx%dx%d (%d tokens), attention %s\n", m.dim,
                m.depth, m.heads, m.head_width(), m.patch_size, m.in_chans, m.image_size, m.image_size,
                m.num_tokens(), acct["attention"].dump().c_str());
    std::printf("%-28s %14s\n", "component", "parameters");
    for (const char* k : {"embedding", "attention", "attention_per_layer", "mlp", "norms", "head", "total"})
      std::printf("%-28s %14lld\n", k, static_cast<long long>(p[k].get<int64_t>()));
    std::printf("%-28s %14.4g\n", "forward FLOPs per image", acct["flops_per_image"].get<double>());
    std::printf("%-28s %14lld\n", "KV floats per token", static_cast<long long>(acct["kv_floats_per_token"].get<int64_t>()));
    return 0;
  });
}
