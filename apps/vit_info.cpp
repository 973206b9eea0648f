// vit_info: parameter breakdown and forward FLOPs of a model config, without training.

#include "vitlab/analysis/accounting.h"
#include "vitlab/analysis/match.h"
#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/cli.h"
#include "vitlab/error.h"

namespace {

void print_comparison(const vitlab::ModelConfig& base, const std::vector<vitlab::AttentionConfig>& specs) {
  std::printf("%-58s %12s %12s %10s %12s %8s\n", "attention", "attn/layer", "total", "KV/token", "FLOPs/img",
              "vs 1st");
  double first = 0;
  for (const auto& a : specs) {
    vitlab::ModelConfig m = base;
    m.attention = a;
    vitlab::ViT model(m);
    auto acct = vitlab::accounting_json(model);
    const double per_layer = acct["params"]["attention_per_layer"].get<double>();
    if (first == 0) first = per_layer;
    vitlab::json spec = a.options;
    spec["name"] = a.name;
    std::printf("%-58s %12.0f %12lld %10lld %12.4g %7.3fx\n", vitlab::dump_json(spec).c_str(), per_layer,
                static_cast<long long>(acct["params"]["total"].get<int64_t>()),
                static_cast<long long>(acct["kv_floats_per_token"].get<int64_t>()),
                acct["flops_per_image"].get<double>(), per_layer / first);
  }
}

}  // namespace

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Show a model's parameters per component and its forward FLOPs per image."};
  std::string config;
  std::vector<std::string> sets;
  bool as_json = false;
  std::vector<std::string> compare;
  int64_t match = 0;
  app.add_option("--config", config, "Run config JSON (its model section is used)")->check(CLI::ExistingFile);
  app.add_option("--set", sets, "Override a config value, e.g. --set model.preset=vit-tiny (repeatable)")->take_all();
  app.add_flag("--json", as_json, "Print JSON instead of a table");
  app.add_option("--compare", compare,
                 "Attention specs to compare side by side at the config's width: names or JSON objects, "
                 "e.g. mha '{\"name\":\"gqa\",\"kv_heads\":2}'")
      ->take_all();
  app.add_option("--match-params", match,
                 "Choose the size of model.attention so that its parameters per layer land nearest N "
                 "(gqa: kv_heads; mla: kv_rank; tucker: ranks q=k=v=o; tpa: q_rank=k_rank=v_rank; btt: rank)")
      ->check(vitlab::cli::integer(1));
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_info", argc, argv);

  return vitlab::run_app("vit_info", [&] {
    vitlab::load_plugins(plugins);
    vitlab::RunConfig cfg = vitlab::load_run_config(config, sets);
    if (match > 0) {
      const auto& m = cfg.model;
      auto r = vitlab::match_attention_params(m.attention, vitlab::AttentionDims::of(m), match);
      vitlab::json spec = r.attention.options;
      spec["name"] = r.attention.name;
      std::fprintf(stderr, "matched %lld attention parameters per layer (target %lld)\n",
                   static_cast<long long>(r.params), static_cast<long long>(match));
      std::printf("%s\n", vitlab::dump_json(spec).c_str());
      return 0;
    }
    if (!compare.empty()) {
      std::vector<vitlab::AttentionConfig> specs;
      for (const auto& c : compare) specs.push_back(vitlab::attention_from_spec(c, "--compare"));
      print_comparison(cfg.model, specs);
      return 0;
    }
    vitlab::ViT model(cfg.model);
    vitlab::json acct = vitlab::accounting_json(model);
    if (as_json) {
      acct["model"] = vitlab::to_json(cfg.model);
      std::printf("%s\n", vitlab::dump_json(acct, 2).c_str());
      return 0;
    }
    const auto& m = cfg.model;
    const auto& p = acct["params"];
    std::printf("model: dim %d, depth %d, heads %d x %d, patch %d on %dx%dx%d (%d tokens), attention %s\n", m.dim,
                m.depth, m.heads, m.head_width(), m.patch_size, m.in_chans, m.image_size, m.image_size,
                m.num_tokens(), vitlab::dump_json(acct["attention"]).c_str());
    std::printf("%-28s %14s\n", "component", "parameters");
    for (const char* k : {"embedding", "attention", "attention_per_layer", "mlp", "norms", "head", "total"})
      std::printf("%-28s %14lld\n", k, static_cast<long long>(p[k].get<int64_t>()));
    std::printf("%-28s %14.4g\n", "forward FLOPs per image", acct["flops_per_image"].get<double>());
    std::printf("%-28s %14lld\n", "KV floats per token", static_cast<long long>(acct["kv_floats_per_token"].get<int64_t>()));
    return 0;
  });
}
