// vit_train: train one ViT and write its checkpoint and results JSON.

#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/cli.h"
#include "vitlab/error.h"
#include "vitlab/train/checkpoint.h"
#include "vitlab/train/distributed.h"
#include "vitlab/train/trainer.h"

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Train a Vision Transformer and write DIR/result.json (schema vitlab.run/1) and DIR/checkpoint/."};
  std::string config, data, out, device;
  std::vector<std::string> sets;
  bool resume = false;
  int threads = -1;
  app.add_option("--config", config, "Run config JSON {model, data, train} (default: built-in defaults)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sets, "Override a config value, e.g. --set model.depth=4 (repeatable)")->take_all();
  app.add_option("--data", data,
                 "Dataset: fashion-mnist, idx:PATH_PREFIX, cifar10:DIR, cifar100:DIR, folder:DIR, synthetic");
  app.add_option("--out", out, "Run directory")->required();
  app.add_flag("--resume", resume, "Continue the run in --out from its last checkpoint (starts it if none)");
  std::string init_from;
  app.add_option("--init-from", init_from,
                 "Start from this checkpoint's weights (fine-tuning, e.g. after vit_convert, or a timm checkpoint); "
                 "the model is the checkpoint's, changed by any --set model.* (model.image_size resamples the "
                 "position embeddings as timm does, model.num_classes starts a new classifier, model.in_chans=1 "
                 "sums an RGB patch kernel; the other weights must fit the result)");
  app.add_option("--threads", threads, "CPU threads (default: train.threads, 0 = all cores)")
      ->check(vitlab::cli::integer(0));
  app.add_option("--device", device, "auto, cpu, cuda, cuda:N (default: train.device)");
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_train", argc, argv);

  return vitlab::run_app("vit_train", [&] {
    vitlab::load_plugins(plugins);
    if (!data.empty()) sets.push_back("data.spec=\"" + data + "\"");
    if (threads >= 0) sets.push_back("train.threads=" + std::to_string(threads));
    if (!device.empty()) sets.push_back("train.device=\"" + device + "\"");
    vitlab::json checkpoint_model;
    if (!init_from.empty()) {
      const std::string found = vitlab::find_checkpoint(init_from);
      if (found.empty()) vitlab::fail("--init-from ", init_from, ": not a vitlab checkpoint (needs model.safetensors and config.json)");
      checkpoint_model = vitlab::to_json(vitlab::read_checkpoint_config(found));
    }
    vitlab::RunConfig cfg = vitlab::load_run_config(config, sets, init_from.empty() ? nullptr : &checkpoint_model);
    vitlab::TrainRequest req{cfg, out, resume, init_from};
    auto record = vitlab::train(req);
    if (vitlab::DistEnv::from_environment().rank != 0) return 0;  // rank 0 reports the run
    const auto& m = record["metrics"];
    std::printf("test top1 %.2f%%  top5 %.2f%%  loss %.4f  (%.0f s of training)\nresults: %s/result.json\n",
                m["top1"].get<double>(), m["top5"].get<double>(), m["loss"].get<double>(),
                record["timing"]["train_seconds"].get<double>(), out.c_str());
    return 0;
  });
}
