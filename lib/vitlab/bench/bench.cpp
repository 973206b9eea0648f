#include "vitlab/bench/bench.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "vitlab/analysis/accounting.h"
#include "vitlab/compat.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/model/vit.h"
#include "vitlab/train/distributed.h"
#include "vitlab/train/cuda_graph.h"
#include "vitlab/train/optim.h"
#include "vitlab/train/step.h"

namespace vitlab {
namespace {

// Runs `step` warm-up times, then `windows` timed windows; img/s of each window.
std::vector<double> timed_windows(const std::function<void()>& step, const BenchOptions& o, int64_t batch,
                                  const torch::Device& device) {
  for (int i = 0; i < o.warmup_steps; ++i) step();
  std::vector<double> rates;
  for (int w = 0; w < o.windows; ++w) {
    synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.window_steps; ++i) step();
    synchronize(device);
    rates.push_back(o.window_steps * batch / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return rates;
}

// Training batches from a dataset's training split, epoch after epoch, in the trainer's order
// and with its loader; counts the host time spent waiting for them, and the loaders' threads'
// time by phase.
class Feed {
 public:
  Feed(const RunConfig& cfg, const torch::Device& device, int64_t batch) : cfg_(cfg), device_(device), batch_(batch) {
    DataConfig dc = cfg.data;
    dc.val_size = 0;
    Splits s = load_data(dc, &cfg.model);
    check_data_fits_model(s, cfg.model);
    data_ = to_device(s.train.size() ? s.train : s.test, device);
    if (data_.size() < batch) fail("--data ", dc.spec, ": ", data_.size(), " images, fewer than one batch of ", batch);
  }
  Dataset next() {
    const auto t0 = std::chrono::steady_clock::now();
    if (!loader_ || step_ == loader_->steps()) {
      if (loader_) add_phases(ended_, loader_->phases());
      loader_.reset();  // its threads stop before the next epoch's start
      const auto seed = static_cast<uint64_t>(cfg_.train.seed);
      loader_ = make_loader(data_, epoch_order(data_.size(), seed, epoch_), batch_, /*drop_last=*/true,
                            LoaderOptions{device_, &cfg_.train.augment, seed, epoch_});
      ++epoch_, step_ = 0;
    }
    Dataset b = loader_->batch(step_++);
    waited += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return b;
  }
  // From here on: the waiting and the phases count from zero.
  void restart() {
    waited = 0;
    mark_ = phases();
  }
  // The loaders' phases since restart().
  PhaseSeconds phases_since_restart() const {
    PhaseSeconds p = phases();
    add_phases(p, mark_, -1);
    return p;
  }
  double waited = 0;  // seconds

 private:
  PhaseSeconds phases() const {
    PhaseSeconds p = ended_;
    if (loader_) add_phases(p, loader_->phases());
    return p;
  }

  const RunConfig& cfg_;
  torch::Device device_;
  int64_t batch_, epoch_ = 0, step_ = 0;
  Dataset data_;
  std::unique_ptr<Loader> loader_;
  PhaseSeconds ended_, mark_;  // the phases of the epochs' loaders that have ended; at restart()
};

json summary(std::vector<double> rates, double flops_per_image, double peak_tflops, int64_t peak_bytes) {
  std::vector<double> sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double tflops = median * flops_per_image / 1e12;
  return json{{"images_per_s", median},
              {"windows", rates},
              {"peak_bytes", peak_bytes},
              {"tflops", tflops},
              {"mfu", peak_tflops > 0 ? json(tflops / peak_tflops) : json(nullptr)}};
}

}  // namespace

double known_peak_tflops(const std::string& name) {
  // Dense bf16 tensor-core peaks from the vendor's data sheets (SXM parts).
  for (const char* h : {"H100", "H200", "GH200"})
    if (name.find(h) != std::string::npos) return 989.4;
  if (name.find("A100") != std::string::npos) return 312.0;
  return 0.0;
}

json bench_config(const RunConfig& cfg, const torch::Device& device, const BenchOptions& o, DataParallel* dp) {
  TORCH_CHECK(!dp || !o.infer, "bench_config: data parallel measures training only");
  if (dp && !o.data.empty()) fail("--data: vit_bench feeds one process from data; run vit_train for data parallel");
  if (cfg.train.cuda_graph) require_cuda_graphs(cfg, device, dp);
  const int64_t batch = (o.batch_size > 0 ? o.batch_size : cfg.train.batch_size) * (dp ? dp->world() : 1);
  const auto& m = cfg.model;
  if (o.train && m.num_classes == 0)
    fail("model.num_classes: 0 (a backbone without a classifier) cannot be trained; set model.num_classes, or --mode infer");
  torch::manual_seed(cfg.train.seed);
  configure_tf32(cfg.train.tf32);
  ViT model(m);
  model->to(device);
  if (dp) dp->attach(model->parameters());
  json acct = accounting_json(model);
  const double fwd = acct["flops_per_image"].get<double>();
  auto u8 = torch::TensorOptions().dtype(torch::kUInt8).device(device);
  auto images = torch::randint(0, 256, {batch, m.in_chans, m.image_size, m.image_size}, u8);
  auto labels = torch::randint(0, std::max(m.num_classes, 1), {batch}, torch::TensorOptions().dtype(torch::kLong).device(device));
  json out{{"attention", acct["attention"]}, {"params", acct["params"]}, {"flops_per_image", fwd},
           {"precision", math_precision(cfg.train.precision, cfg.train.tf32, device)},
           {"kv_floats_per_token", acct["kv_floats_per_token"]}, {"batch_size", batch}};
  if (o.train) {
    auto optimizer = make_optimizer(model, cfg.train);
    model->train();
    reset_peak_memory(device);
    std::unique_ptr<GraphedTrainStep> graphed;
    if (cfg.train.cuda_graph) graphed = std::make_unique<GraphedTrainStep>(model, *optimizer, nullptr, cfg);
    const double lr = cfg.train.lr;
    BenchOptions ow = o;  // the warm-up covers the graph's plain steps and its capture
    if (graphed) ow.warmup_steps = std::max(o.warmup_steps, GraphedTrainStep::kWarmupSteps + 2);
    auto rates = timed_windows(
        [&] {
          if (graphed) (*graphed)(images, labels, lr);
          else train_step(model, *optimizer, nullptr, images, labels, cfg, dp);
        },
        ow, batch, device);
    // With several processes the FLOP/s are the group's, against the group's peak.
    out["train"] = summary(rates, 3 * fwd, o.peak_tflops * (dp ? dp->world() : 1), peak_memory_bytes(device));
    if (dp) out["train"]["world_size"] = dp->world();
    if (!o.data.empty()) {  // the same steps, each fed its batch by the training loader
      RunConfig fed = cfg;
      fed.data.spec = o.data;
      Feed feed(fed, device, batch);
      int64_t steps = 0;
      double timed = 0;
      auto fed_rates = timed_windows(
          [&] {
            if (steps++ == ow.warmup_steps) feed.restart();  // from the first timed step
            const Dataset b = feed.next();
            if (graphed) (*graphed)(b.images, b.labels, lr);
            else train_step(model, *optimizer, nullptr, b.images, b.labels, cfg);
          },
          ow, batch, device);
      for (double r : fed_rates) timed += ow.window_steps * batch / r;
      json f = summary(fed_rates, 3 * fwd, o.peak_tflops, peak_memory_bytes(device));
      f["data"] = o.data;
      f["data_wait_fraction"] = feed.waited / timed;
      // The loader's threads' time a timed step, by phase (prefetch makes it approximate: the
      // loader works a few batches ahead of the step).
      const int64_t timed_steps = static_cast<int64_t>(fed_rates.size()) * ow.window_steps;
      json phases = json::object();
      for (const auto& [name, seconds] : feed.phases_since_restart()) phases[name] = 1e3 * seconds / timed_steps;
      f["loader_ms_per_step"] = phases;
      f["vs_synthetic"] = f["images_per_s"].get<double>() / out["train"]["images_per_s"].get<double>();
      out["train_from_data"] = f;
    }
  }
  if (o.infer) {
    model->eval();
    torch::NoGradGuard no_grad;
    reset_peak_memory(device);
    const bool bf16 = uses_bf16(cfg.train.precision, device);
    std::unique_ptr<GraphedForward> graphed;  // as evaluate() runs it with train.cuda_graph
    if (cfg.train.cuda_graph) graphed = std::make_unique<GraphedForward>(model, bf16);
    BenchOptions ow = o;  // the warm-up covers the graph's plain batch and its capture
    if (graphed) ow.warmup_steps = std::max(o.warmup_steps, 3);
    auto rates = timed_windows(
        [&] {
          if (graphed) {
            (*graphed)(images);
          } else {
            compat::AutocastBf16 autocast(device.type(), bf16);
            model->forward(preprocess(images, m));
          }
        },
        ow, batch, device);
    out["infer"] = summary(rates, fwd, o.peak_tflops, peak_memory_bytes(device));
  }
  return out;
}

}  // namespace vitlab
