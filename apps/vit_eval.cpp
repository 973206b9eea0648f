// vit_eval: evaluate a checkpoint (vitlab's or timm's) on a dataset split.

#include <memory>

#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/cli.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/hf.h"
#include "vitlab/io/timm.h"
#include "vitlab/results/predictions.h"
#include "vitlab/results/run_record.h"
#include "vitlab/train/checkpoint.h"
#include "vitlab/train/cuda_graph.h"
#include "vitlab/train/distributed.h"
#include "vitlab/train/evaluate.h"

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Evaluate a vitlab checkpoint: top-1, top-5, loss, per-class accuracy, confusion matrix, img/s."};
  std::string checkpoint, data, split = "test", out, device = "auto", precision = "auto", timm_config, interpolation,
      class_map;
  int threads = 0, batch = 500, image_size = 0;
  double crop_pct = -1;
  bool cuda_graph = false;
  app.add_option("--checkpoint", checkpoint, "Checkpoint directory (vitlab's; timm's: model.safetensors + timm's "
                                             "config.json; transformers': + preprocessor_config.json), or its "
                                             "model.safetensors")->required();
  app.add_option("--timm-config", timm_config,
                 "timm's config.json for a --checkpoint without one beside it (architecture, model_args, "
                 "pretrained_cfg)")->check(CLI::ExistingFile);
  app.add_option("--data", data, "Dataset spec (default: the run's own, else fashion-mnist; a timm or "
                                 "transformers checkpoint needs one, e.g. folder:DIR)");
  app.add_option("--class-map", class_map, "Class names of the checkpoint's outputs, one a line (timm's class map): "
                                           "an image folder's class folders are matched to them by name (default: "
                                           "the checkpoint's label_names)");
  app.add_option("--split", split, "test, val or train")->check(CLI::IsMember({"test", "val", "train"}));
  app.add_option("--image-size", image_size, "Evaluate at this image size (position embeddings resampled as timm "
                                             "does; default: the model's)")->check(vitlab::cli::integer(1));
  app.add_option("--crop-pct", crop_pct, "Resize the shorter side to size / crop_pct, then centre-crop (default: "
                                         "timm's pretrained_cfg for timm checkpoints, else 0 = resize whole images)")
      ->check(vitlab::cli::number(0, 1));
  app.add_option("--interpolation", interpolation, "bilinear or bicubic (default: timm's pretrained_cfg, else "
                                                   "bilinear)")->check(CLI::IsMember({"bilinear", "bicubic"}));
  app.add_option("--out", out, "Write the JSON here (default: print it)");
  std::string predictions;
  int64_t topk = 5;
  app.add_option("--predictions", predictions,
                 "Also write every image's answer here: its name, label, top classes with names and probabilities "
                 "(JSON when FILE ends in .json, else CSV)");
  app.add_option("--topk", topk, "Classes per image in --predictions")->check(vitlab::cli::integer(1));
  app.add_option("--batch-size", batch, "Evaluation batch size")->check(vitlab::cli::integer(1));
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->check(vitlab::cli::integer(0));
  app.add_option("--device", device, "auto, cpu, cuda, cuda:N");
  app.add_option("--precision", precision, "auto (bf16 autocast on CUDA, float32 elsewhere), fp32 or bf16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  app.add_flag("--cuda-graph", cuda_graph, "Replay the forward pass as a CUDA graph (CUDA, LibTorch >= 2.4)");
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_eval", argc, argv);

  return vitlab::run_app("vit_eval", [&] {
    vitlab::load_plugins(plugins);
    const int n_threads = vitlab::configure_threads(threads);
    // Launched as several processes (torchrun's variables): each evaluates a share, rank 0 reports.
    const vitlab::DistEnv dist = vitlab::DistEnv::from_environment();
    const torch::Device dev = vitlab::resolve_device(dist.device(device));
    std::unique_ptr<vitlab::DataParallel> dp;
    if (dist.active()) dp = std::make_unique<vitlab::DataParallel>(dist, dev);
    if (cuda_graph) vitlab::require_cuda_graphs(vitlab::RunConfig{}, dev, dp.get(), "--cuda-graph");
    // The model: the checkpoint's config.json, or the timm config given apart; a timm config
    // also brings timm's evaluation preprocessing (resize by crop_pct, centre crop).
    const std::string ck = vitlab::is_regular_file(checkpoint) ? vitlab::parent_path(checkpoint) : checkpoint;
    std::string config_path = timm_config;
    if (config_path.empty()) {
      if (!vitlab::is_directory(ck)) vitlab::fail("--checkpoint ", checkpoint, ": no such checkpoint directory");
      const std::string found = vitlab::find_checkpoint(ck);
      if (found.empty()) vitlab::fail("--checkpoint ", checkpoint, ": not a checkpoint (needs model.safetensors and config.json, or --timm-config)");
      config_path = vitlab::join_path(found, "config.json");
    }
    const vitlab::json config_json = vitlab::read_json_file(config_path);
    const bool timm = vitlab::is_timm_config(config_json), hf = vitlab::is_hf_config(config_json);
    const bool pretrained = timm || hf;  // a hub checkpoint: no vitlab run behind it
    vitlab::ModelConfig mc = vitlab::checkpoint_config_from_json(config_json, config_path);
    if (image_size > 0) {
      mc.image_size = image_size;
      try {
        mc.validate();
      } catch (const vitlab::Error& e) {
        vitlab::fail("--image-size ", image_size, ": ", e.what());
      }
    }
    if (!class_map.empty()) {
      mc.label_names = vitlab::read_class_map(class_map);
      if (static_cast<int>(mc.label_names.size()) != mc.num_classes)
        vitlab::fail("--class-map ", class_map, ": has ", mc.label_names.size(), " class names but the checkpoint has ",
                     mc.num_classes, " classes");
    }
    vitlab::ViT model = vitlab::load_model(checkpoint, mc);
    model->to(dev);
    // The run's own data settings (same validation split) when the checkpoint sits in a run dir.
    vitlab::DataConfig dc;
    const std::string run_config = vitlab::join_path(vitlab::parent_path(ck), "run_config.json");
    if (!pretrained && vitlab::path_exists(run_config)) dc = vitlab::run_from_json(vitlab::read_json_file(run_config)).data;
    if (!data.empty()) dc.spec = data;
    else if (pretrained)
      vitlab::fail("--data: a ", timm ? "timm" : "transformers", " checkpoint needs the data to evaluate on, e.g. --data folder:DIR");
    if (pretrained) dc.val_size = 0;  // no run behind it, so no held-out part of the training split either
    if (timm) vitlab::apply_timm_eval_transform(config_json, config_path, dc);
    if (hf) {  // the image processor beside it, or ViTImageProcessor's defaults
      const std::string dir = vitlab::parent_path(config_path);
      vitlab::apply_hf_eval_transform(vitlab::hf_preprocessor(dir), mc,
                                      vitlab::join_path(dir, "preprocessor_config.json"), dc);
    }
    if (crop_pct >= 0) dc.crop_pct = crop_pct;
    if (!interpolation.empty()) dc.interpolation = interpolation;
    if (pretrained || image_size > 0 || dc.crop_pct > 0) dc.image_size = mc.image_size;
    vitlab::Splits splits = vitlab::load_data(dc, &mc);
    if (splits.unlabelled && predictions.empty())
      vitlab::fail("--data ", dc.spec, ": images without class folders have no labels to score; --predictions FILE ",
                   "writes the model's answers");
    vitlab::check_data_fits_model(splits, model->cfg);
    const vitlab::Dataset& d = split == "test" ? splits.test : split == "val" ? splits.val : splits.train;
    if (d.size() == 0) vitlab::fail("--split ", split, ": data '", dc.spec, "' has no such split");
    const bool bf16 = vitlab::uses_bf16(precision, dev);
    if (!predictions.empty() && dp) vitlab::fail("--predictions: one process writes them; run vit_eval without WORLD_SIZE");
    std::unique_ptr<vitlab::GraphedForward> graphed;
    if (cuda_graph) graphed = std::make_unique<vitlab::GraphedForward>(model, bf16);
    auto r = vitlab::evaluate(model, vitlab::to_device(d, dev), batch, bf16, graphed.get(), dp.get(),
                              predictions.empty() ? 0 : topk);
    if (!predictions.empty()) {  // rows named by file, or by their index in the split
      if (r.skipped > 0)
        vitlab::fail("--predictions: ", r.skipped, " images could not be decoded and their rows cannot be named; ",
                     "evaluate without data.skip_bad_images to find them");
      std::vector<std::string> names;
      if (d.streamed()) names = d.files->paths;
      else
        for (int64_t i = 0; i < d.size(); ++i) names.push_back("#" + std::to_string(i));
      if (splits.unlabelled) r.labels.fill_(-1);
      vitlab::write_predictions(predictions, r, names, model->cfg.label_names);
    }
    vitlab::json data_record = splits.describe();
    data_record["spec"] = dc.spec;
    if (dc.image_size > 0) {
      data_record["crop_pct"] = dc.crop_pct;
      if (dc.crop_mode != "center") data_record["crop_mode"] = dc.crop_mode;
      data_record["interpolation"] = dc.interpolation;
    }
    vitlab::json record{{"schema", "vitlab.eval/1"}, {"created", vitlab::utc_timestamp()},
                        {"git_commit", vitlab::git_commit()}, {"checkpoint", checkpoint},
                        {"host", vitlab::host_record(dev, n_threads)}, {"data", data_record},
                        {"split", split}, {"precision", bf16 ? "bf16" : "fp32"}};
    // Unlabelled images: answers only, nothing to score.
    record["metrics"] = splits.unlabelled ? vitlab::json{{"images", r.images}, {"seconds", r.seconds},
                                                         {"images_per_s", r.images_per_s}}
                                          : r.to_json(true);
    if (dp) record["distributed"] = vitlab::json{{"world_size", dp->world()}, {"backend", dp->backend()}};
    if (!vitlab::loaded_plugins().empty()) record["plugins"] = vitlab::plugins_json();
    if (!predictions.empty()) record["predictions"] = predictions;
    if (dist.rank != 0) {
      dp->barrier();  // rank 0 writes
      return 0;
    }
    if (splits.unlabelled)
      std::fprintf(stderr, "predicted %lld images (%.0f img/s): %s\n", static_cast<long long>(r.images), r.images_per_s,
                   predictions.c_str());
    else
      std::fprintf(stderr, "%s top1 %.2f%%  top5 %.2f%%  loss %.4f  (%lld images, %.0f img/s)\n", split.c_str(), r.top1,
                   r.top5, r.loss, static_cast<long long>(r.images), r.images_per_s);
    if (out.empty())
      std::printf("%s\n", vitlab::dump_json(record, 2).c_str());
    else
      vitlab::atomic_write(out, vitlab::dump_json(record, 2) + "\n");
    if (dp) dp->barrier();
    return 0;
  });
}
