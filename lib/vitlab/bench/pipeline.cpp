#include "vitlab/bench/pipeline.h"

#include <sys/resource.h>

#include <chrono>
#include <functional>

#include "vitlab/data/augment.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/error.h"

namespace vitlab {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// `then`, where given, runs on every batch inside the timing (the training step's augmentation).
json time_loader(const Dataset& d, const LoaderOptions& options, int64_t batch, int64_t batches, int64_t warmup,
                 const std::function<void(const Dataset&)>& then = {}) {
  const int64_t needed = (batches + warmup) * batch;
  if (d.size() < needed)
    fail("--pipeline-batches: ", batches + warmup, " batches of ", batch, " need ", needed, " images, the split has ",
         d.size());
  auto loader = make_loader(d, torch::randperm(d.size(), torch::kLong).narrow(0, 0, needed), batch, true, options);
  std::chrono::steady_clock::time_point t0;
  int64_t checksum = 0;
  for (int64_t s = 0; s < warmup + batches; ++s) {
    if (s == warmup) {
      synchronize(options.device);
      t0 = std::chrono::steady_clock::now();
    }
    Dataset b = loader->batch(s);
    if (then) then(b);
    checksum += b.labels.sum().item<int64_t>();  // waits for the copy: the batch is on the device
  }
  synchronize(options.device);
  const double secs = seconds_since(t0);
  // The loader's threads' time a batch, by phase, over every batch it made: it works a few
  // batches ahead, so the warm-up's time holds some of the timed batches' work.
  json phases = json::object();
  for (const auto& [name, seconds] : loader->phases()) phases[name] = 1e3 * seconds / (warmup + batches);
  return {{"images_per_s", batches * batch / secs}, {"batches", batches}, {"batch_size", batch},
          {"seconds", secs}, {"label_sum", checksum}, {"loader_ms_per_batch", phases}};
}

}  // namespace

json bench_pipeline(const RunConfig& cfg, const torch::Device& device, int64_t batches, int64_t warmup) {
  DataConfig dc = cfg.data;
  dc.val_size = 0;  // every image is timed
  const auto t0 = std::chrono::steady_clock::now();
  Splits s = load_data(dc, &cfg.model);
  const double listing = seconds_since(t0);
  check_data_fits_model(s, cfg.model);
  const Dataset train = to_device(s.train.size() ? s.train : s.test, device);
  const Dataset test = to_device(s.test, device);
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  json data = s.describe();
  data["spec"] = dc.spec;
  data["workers"] = dc.workers;
  const int64_t b = cfg.train.batch_size;
  json out{{"data", data}, {"listing_seconds", listing}, {"max_rss_bytes", static_cast<int64_t>(ru.ru_maxrss) * 1024}};
  out["train"] = time_loader(train, LoaderOptions{device, &cfg.train.augment, static_cast<uint64_t>(cfg.train.seed), 0},
                             b, batches, warmup);
  // The same with the training step's batch augmentation (flip, auto_augment / color_jitter,
  // normalisation, random erasing, mixup): what the model would be fed.
  torch::manual_seed(cfg.train.seed);
  out["train_augmented"] = time_loader(
      train, LoaderOptions{device, &cfg.train.augment, static_cast<uint64_t>(cfg.train.seed), 0}, b, batches, warmup,
      [&](const Dataset& d) { augment_batch(d.images, d.labels, cfg.model, cfg.train); });
  out["eval"] = time_loader(test, LoaderOptions{device}, b, std::max<int64_t>(1, std::min(batches, test.size() / b - warmup)),
                            warmup);
  return out;
}

}  // namespace vitlab
