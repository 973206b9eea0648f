// vit_bench: training and inference throughput of model configs on synthetic data.

#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/bench/bench.h"
#include "vitlab/bench/pipeline.h"
#include "vitlab/cli.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/model/vit.h"
#include "vitlab/results/run_record.h"
#include "vitlab/train/distributed.h"

// A streamed loader's threads' time by phase (loader_ms_per_step / _batch), on one line under its
// figure; nothing for batches from memory.
static void print_loader_phases(const vitlab::json& phases, const char* per) {
  std::string line;
  for (const auto& [name, ms] : phases.items()) {
    char value[32];
    std::snprintf(value, sizeof value, " %.1f", ms.get<double>());
    line += (line.empty() ? "" : ", ") + name + value;
  }
  if (!line.empty()) std::printf("    its loader's threads, %s by phase (summed over threads): %s\n", per, line.c_str());
}

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Measure train and inference img/s, peak memory and MFU of model configs on synthetic data "
               "(median of timed windows after a warm-up)."};
  std::vector<std::string> configs, sets, attention;
  std::string mode = "both", device = "auto", out;
  int threads = 0;
  vitlab::BenchOptions o;
  o.peak_tflops = -1;
  app.add_option("--config", configs, "Run config JSON; repeat for several (default: the built-in defaults)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sets, "Override a config value, e.g. --set model.dim=192 (applies to every config)");
  app.add_option("--attention", attention,
                 "Attention specs to measure with every config, names or JSON objects, e.g. mha "
                 "'{\"name\":\"gqa\",\"kv_heads\":2}' (default: the config's)")
      ->take_all();
  app.add_option("--batch-size", o.batch_size, "Batch size (default: the config's train.batch_size)")
      ->check(vitlab::cli::integer(1));
  app.add_option("--warmup", o.warmup_steps, "Untimed steps first")->check(vitlab::cli::integer(0));
  app.add_option("--windows", o.windows, "Timed windows; the median is reported")->check(vitlab::cli::integer(1));
  app.add_option("--window-steps", o.window_steps, "Steps per timed window")->check(vitlab::cli::integer(1));
  app.add_option("--mode", mode, "train, infer or both")->check(CLI::IsMember({"train", "infer", "both"}));
  app.add_option("--peak-tflops", o.peak_tflops,
                 "Device peak TFLOP/s for MFU (default: known GPUs' dense bf16 peak; 0: no MFU)")
      ->check(vitlab::cli::number(0));
  app.add_option("--device", device, "auto, cpu, cuda, cuda:N");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->check(vitlab::cli::integer(0));
  app.add_option("--json", out, "Also write all results to this JSON file");
  std::string data;
  int64_t pipeline_batches = 0;
  app.add_option("--data", data,
                 "Dataset spec, e.g. folder:DIR: with --pipeline the data measured (default: the config's data.spec); "
                 "otherwise training is timed twice, on one batch in memory and fed from this data's training "
                 "loader as vit_train feeds it (train_from_data)");
  app.add_option("--pipeline", pipeline_batches,
                 "Measure the input pipeline alone instead of the model: N batches through the training loader "
                 "(with the config's augmentation) and the evaluation loader, delivered on the device")
      ->check(vitlab::cli::integer(1));
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_bench", argc, argv);

  return vitlab::run_app("vit_bench", [&] {
    vitlab::load_plugins(plugins);
    const int n_threads = vitlab::configure_threads(threads);
    // Launched as several processes (RANK, WORLD_SIZE, ...): data-parallel training, rank 0 reports.
    const vitlab::DistEnv dist = vitlab::DistEnv::from_environment();
    if (dist.active()) {
      if (app.count("--mode") && mode != "train")
        vitlab::fail("--mode ", mode, ": with WORLD_SIZE=", dist.world, " only training is measured");
      mode = "train";
    }
    const torch::Device dev = vitlab::resolve_device(dist.device(device));
    std::unique_ptr<vitlab::DataParallel> dp;
    if (dist.active()) dp = std::make_unique<vitlab::DataParallel>(dist, dev);
    const bool writer = dist.rank == 0;
    const std::string dev_name = vitlab::device_name(dev);
    if (o.peak_tflops < 0) o.peak_tflops = vitlab::known_peak_tflops(dev_name);
    o.train = mode != "infer", o.infer = mode != "train";
    if (!data.empty()) sets.push_back("data.spec=\"" + data + "\"");  // validated with the config
    if (pipeline_batches == 0 && !data.empty()) {
      if (!o.train) vitlab::fail("--data: times training; drop --mode ", mode);
      o.data = data;
    }
    if (configs.empty()) configs.push_back("");
    if (pipeline_batches > 0) {  // the data alone, no model
      if (configs.size() > 1 || !attention.empty()) vitlab::fail("--pipeline: takes one --config and no --attention");
      vitlab::RunConfig cfg = vitlab::load_run_config(configs[0], sets);
      if (o.batch_size > 0) cfg.train.batch_size = static_cast<int>(o.batch_size);
      vitlab::json r = vitlab::bench_pipeline(cfg, dev, pipeline_batches, o.warmup_steps);
      std::printf("%-16s %12s   (%s, %d decode workers, batch %d)\n", "loader", "img/s", cfg.data.spec.c_str(),
                  cfg.data.workers, cfg.train.batch_size);
      for (const char* phase : {"train", "train_augmented", "eval"}) {
        std::printf("%-16s %12.0f\n", phase, r[phase]["images_per_s"].get<double>());
        print_loader_phases(r[phase]["loader_ms_per_batch"], "ms a batch");
      }
      if (!out.empty()) {
        vitlab::json record{{"schema", "vitlab.bench_pipeline/1"}, {"created", vitlab::utc_timestamp()},
                            {"git_commit", vitlab::git_commit()}, {"host", vitlab::host_record(dev, n_threads)},
                            {"train_config", vitlab::to_json(cfg.train)}, {"results", r}};
        vitlab::atomic_write(out, vitlab::dump_json(record, 2) + "\n");
      }
      return 0;
    }
    // Every run before any measurement, so a bad spec fails at once.
    std::vector<std::pair<std::string, vitlab::RunConfig>> runs;
    for (const auto& path : configs) {
      vitlab::RunConfig base = vitlab::load_run_config(path, sets);
      if (attention.empty()) runs.emplace_back(path, base);
      for (const auto& spec : attention) {
        vitlab::RunConfig c = base;
        c.model.attention = vitlab::attention_from_spec(spec, "--attention");
        c.validate();
        vitlab::ViT probe(c.model);  // the attention's own options are checked by its constructor
        runs.emplace_back(path, c);
      }
    }
    if (writer)
      std::printf("%-48s %10s %9s %10s %7s %10s %7s %9s %6s\n", "config / attention", "params", "GFLOP/img",
                  "train img/s", "vs 1st", "infer img/s", "vs 1st", "peak MiB", "MFU%");
    vitlab::json results = vitlab::json::array();
    double first_train = 0, first_infer = 0;
    for (const auto& [path, cfg] : runs) {
      vitlab::json r = vitlab::bench_config(cfg, dev, o, dp.get());
      if (!writer) continue;
      r["config"] = path.empty() ? "(defaults)" : path;
      r["model"] = vitlab::to_json(cfg.model);
      results.push_back(r);
      auto rate = [&](const char* phase) { return r.contains(phase) ? r[phase]["images_per_s"].get<double>() : 0.0; };
      if (first_train == 0) first_train = rate("train"), first_infer = rate("infer");
      vitlab::json spec = cfg.model.attention.options;
      spec["name"] = cfg.model.attention.name;
      const std::string label = (path.empty() ? "" : vitlab::base_name(path) + " ") + vitlab::dump_json(spec);
      const vitlab::json& peak_phase = r.contains("train") ? r["train"] : r["infer"];
      const vitlab::json& mfu = peak_phase["mfu"];
      std::printf("%-48s %10lld %9.3f %10.0f %6.2fx %10.0f %6.2fx %9.0f %6s\n", label.c_str(),
                  static_cast<long long>(r["params"]["total"].get<int64_t>()), r["flops_per_image"].get<double>() / 1e9,
                  rate("train"), first_train > 0 ? rate("train") / first_train : 0.0, rate("infer"),
                  first_infer > 0 ? rate("infer") / first_infer : 0.0, peak_phase["peak_bytes"].get<double>() / (1 << 20),
                  mfu.is_null() ? "-" : std::to_string(static_cast<int>(100 * mfu.get<double>() + 0.5)).c_str());
      if (r.contains("train_from_data")) {
        const vitlab::json& f = r["train_from_data"];
        std::printf("%-48s %10s %9s %10.0f %6.2fx   (fed from %s; waiting for data %.1f%% of the time)\n",
                    "  the same fed from --data", "", "", f["images_per_s"].get<double>(), f["vs_synthetic"].get<double>(),
                    data.c_str(), 100 * f["data_wait_fraction"].get<double>());
        print_loader_phases(f["loader_ms_per_step"], "ms a step");
      }
      std::fflush(stdout);
    }
    if (writer && !out.empty()) {
      vitlab::json record{{"schema", "vitlab.bench/1"}, {"created", vitlab::utc_timestamp()},
                          {"git_commit", vitlab::git_commit()}, {"host", vitlab::host_record(dev, n_threads)},
                          {"options", {{"warmup", o.warmup_steps}, {"windows", o.windows},
                                       {"window_steps", o.window_steps}, {"mode", mode},
                                       {"peak_tflops", o.peak_tflops}}},
                          {"results", results}};
      vitlab::atomic_write(out, vitlab::dump_json(record, 2) + "\n");
    }
    return 0;
  });
}
