// vit_eval: evaluate a checkpoint on a dataset split.
#include <CLI/CLI.hpp>

#include "vitlab/app.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/results/run_record.h"
#include "vitlab/train/checkpoint.h"
#include "vitlab/train/evaluate.h"

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Evaluate a vitlab checkpoint: top-1, top-5, loss, per-class accuracy, confusion matrix, img/s."};
  std::string checkpoint, data, split = "test", out, device = "auto", precision = "auto";
  int threads = 0, batch = 500;
  app.add_option("--checkpoint", checkpoint, "Checkpoint directory (or its model.safetensors)")->required();
  app.add_option("--data", data, "Dataset spec (default: the run's own, else fashion-mnist)");
  app.add_option("--split", split, "test, val or train")->check(CLI::IsMember({"test", "val", "train"}));
  app.add_option("--out", out, "Write the JSON here (default: print it)");
  app.add_option("--batch-size", batch, "Evaluation batch size")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--device", device, "auto, cpu, cuda, cuda:N");
  app.add_option("--precision", precision, "auto (bf16 autocast on CUDA, float32 elsewhere), fp32 or bf16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  CLI11_PARSE(app, argc, argv);

  return vitlab::run_app("vit_eval", [&] {
    const int n_threads = vitlab::configure_threads(threads);
    const torch::Device dev = vitlab::resolve_device(device);
    vitlab::ViT model = vitlab::load_model(checkpoint);
    model->to(dev);
    // The run's own data settings (same validation split) when the checkpoint sits in a run dir.
    vitlab::DataConfig dc;
    const std::string ck = vitlab::is_regular_file(checkpoint) ? vitlab::parent_path(checkpoint) : checkpoint;
    const std::string run_config = vitlab::join_path(vitlab::parent_path(ck), "run_config.json");
    if (vitlab::path_exists(run_config)) dc = vitlab::run_from_json(vitlab::read_json_file(run_config)).data;
    if (!data.empty()) dc.spec = data;
    vitlab::Splits splits = vitlab::load_data(dc);
    vitlab::check_data_fits_model(splits, model->cfg);
    const vitlab::Dataset& d = split == "test" ? splits.test : split == "val" ? splits.val : splits.train;
    if (d.size() == 0) vitlab::fail("--split ", split, ": data '", dc.spec, "' has no such split");
    const bool bf16 = vitlab::uses_bf16(precision, dev);
    auto r = vitlab::evaluate(model, vitlab::to_device(d, dev), batch, bf16);
    vitlab::json data_record = splits.describe();
    data_record["spec"] = dc.spec;
    vitlab::json record{{"schema", "vitlab.eval/1"}, {"created", vitlab::utc_timestamp()},
                        {"git_commit", vitlab::git_commit()}, {"checkpoint", checkpoint},
                        {"host", vitlab::host_record(dev, n_threads)}, {"data", data_record},
                        {"split", split}, {"precision", bf16 ? "bf16" : "fp32"}, {"metrics", r.to_json(true)}};
    std::fprintf(stderr, "%s top1 %.2f%%  top5 %.2f%%  loss %.4f  (%lld images, %.0f img/s)\n", split.c_str(), r.top1,
                 r.top5, r.loss, static_cast<long long>(r.images), r.images_per_s);
    if (out.empty())
      std::printf("%s\n", record.dump(2).c_str());
    else
      vitlab::atomic_write(out, record.dump(2) + "\n");
    return 0;
  });
}
