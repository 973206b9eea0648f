#include "vitlab/train/cuda_graph.h"

#include "vitlab/compat.h"
#include "vitlab/error.h"
#include "vitlab/model/vit.h"

#if defined(VITLAB_WITH_CUDA) && VITLAB_TORCH_AT_LEAST(2, 4)
#define VITLAB_CUDA_GRAPHS 1
#else
#define VITLAB_CUDA_GRAPHS 0
#endif

#if VITLAB_CUDA_GRAPHS
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace vitlab {

std::string cuda_graph_unsupported(const RunConfig& cfg, const torch::Device& device, const DataParallel* dp) {
#if VITLAB_CUDA_GRAPHS
  if (!device.is_cuda()) return "needs a CUDA device (this run is on " + device.str() + ")";
  if (dp) return "needs one process (WORLD_SIZE is " + std::to_string(dp->world()) + ")";
  const auto& a = cfg.train.augment;
  if (a.mixup_alpha > 0 || a.cutmix_alpha > 0) return "does not run with mixup or cutmix (they draw on the host)";
  if (a.re_prob > 0) return "does not run with random erasing (train.augment.re_prob: it draws on the host)";
  if (!a.auto_augment.empty() || !a.color_jitter.empty())
    return "does not run with train.augment.auto_augment or color_jitter (their ops are drawn on the host)";
  return "";
#else
  (void)cfg; (void)device; (void)dp;
  return "needs LibTorch >= 2.4 with CUDA (this is LibTorch " + compat::torch_version() + " without CUDA graphs)";
#endif
}

void require_cuda_graphs(const RunConfig& cfg, const torch::Device& device, const DataParallel* dp,
                         const std::string& what) {
  const std::string why = cuda_graph_unsupported(cfg, device, dp);
  if (!why.empty()) fail(what, ": ", why);
}

#if VITLAB_CUDA_GRAPHS

namespace {

c10::cuda::CUDAStream side_stream(ViT& model) {
  return c10::cuda::getStreamFromPool(/*isHighPriority=*/false, model->parameters()[0].device().index());
}

// Runs `work` on `stream`, ordered after what the caller's stream holds and before what it gets
// next: warm-up and capture run off the caller's stream, as capture requires.
template <typename Work>
void run_on(const c10::cuda::CUDAStream& stream, Work work) {
  const auto caller = c10::cuda::getCurrentCUDAStream(stream.device_index());
  at::cuda::CUDAEvent ready, done;
  ready.record(caller);
  ready.block(stream);
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    work();
  }
  done.record(stream);
  done.block(caller);
}

// Captures `work` into `graph` on `stream`. The autocast cache is off meanwhile: a weight cast
// cached outside the graph would be read inside it and never refreshed. Thread-local capture
// mode: the image loader's threads (data/nvjpeg_loader.h) go on decoding on their own streams,
// which the default global mode would count as an error of the capture.
template <typename Work>
void capture(at::cuda::CUDAGraph& graph, const c10::cuda::CUDAStream& stream, Work work) {
  const bool cache = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  run_on(stream, [&] {
    graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    work();
    graph.capture_end();
  });
  at::autocast::set_autocast_cache_enabled(cache);
}

}  // namespace

struct GraphedTrainStep::Impl {
  ViT& model;
  FusedAdamW& optimizer;
  Ema* ema;
  const RunConfig& cfg;
  c10::cuda::CUDAStream stream;  // warm-up and capture run here, off the caller's stream
  at::cuda::CUDAGraph graph;
  torch::Tensor images, labels, lr;  // the graph's inputs, filled by every call
  StepOutput out;                    // its outputs
  int calls = 0;

  Impl(ViT& m, FusedAdamW& o, Ema* e, const RunConfig& c)
      : model(m), optimizer(o), ema(e), cfg(c), stream(side_stream(m)) {}
  template <typename Work>
  void on_side_stream(Work work) { run_on(stream, work); }
};

GraphedTrainStep::GraphedTrainStep(ViT& model, FusedAdamW& optimizer, Ema* ema, const RunConfig& cfg) {
  const torch::Device device = model->parameters()[0].device();
  require_cuda_graphs(cfg, device, nullptr);
  impl_ = std::make_unique<Impl>(model, optimizer, ema, cfg);
  impl_->lr = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  optimizer.set_device_lr(impl_->lr);  // the plain warm-up steps read it too: one code path
}

GraphedTrainStep::~GraphedTrainStep() { impl_->optimizer.set_device_lr({}); }

StepOutput GraphedTrainStep::operator()(const torch::Tensor& images, const torch::Tensor& labels, double lr) {
  Impl& g = *impl_;
  g.lr.fill_(lr);  // a kernel with the value as its argument: no wait for the device
  set_lr(g.optimizer, lr);
  if (g.calls < kWarmupSteps) {
    ++g.calls;
    StepOutput out;
    g.on_side_stream([&] { out = train_step(g.model, g.optimizer, g.ema, images, labels, g.cfg); });
    return out;
  }
  if (g.calls == kWarmupSteps) {
    ++g.calls;
    g.images = images.clone();
    g.labels = labels.clone();
    // Gradients are dropped (train_step's zero_grad sets them to none) and re-created inside the
    // capture, so they live in the graph's memory.
    capture(g.graph, g.stream, [&] { g.out = train_step(g.model, g.optimizer, g.ema, g.images, g.labels, g.cfg); });
    // The capture recorded the step without running it (its host side, the optimizer's step
    // count, did run): run it now for this batch.
    g.graph.replay();
    return g.out;
  }
  g.images.copy_(images);
  g.labels.copy_(labels);
  g.graph.replay();
  g.optimizer.count_replayed_step();
  return g.out;
}

struct GraphedForward::Impl {
  ViT& model;
  bool bf16;
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  torch::Tensor images, logits;  // the graph's input and output
  int seen = 0;                  // batches of the captured shape so far

  torch::Tensor plain(const torch::Tensor& x) {
    compat::AutocastBf16 autocast(c10::DeviceType::CUDA, bf16);
    return model->forward(preprocess(x, model->cfg));
  }
};

GraphedForward::GraphedForward(ViT& model, bool bf16) {
  const torch::Device device = model->parameters()[0].device();
  require_cuda_graphs(RunConfig{}, device, nullptr);
  impl_.reset(new Impl{model, bf16, side_stream(model), {}, {}, {}, 0});
}

GraphedForward::~GraphedForward() = default;

torch::Tensor GraphedForward::operator()(const torch::Tensor& images) {
  Impl& g = *impl_;
  torch::NoGradGuard no_grad;
  if (g.images.defined() && images.sizes() != g.images.sizes()) return g.plain(images);
  if (g.seen == 0) {  // warm-up: the libraries' handles and workspaces, outside the graph
    ++g.seen;
    g.images = images.clone();
    torch::Tensor out;
    run_on(g.stream, [&] { out = g.plain(images); });
    return out;
  }
  g.images.copy_(images);
  if (g.seen == 1) {
    ++g.seen;
    capture(g.graph, g.stream, [&] { g.logits = g.plain(g.images); });
  }
  g.graph.replay();
  return g.logits;
}

#else  // no CUDA graphs in this build: the constructors refuse, so no call can follow

struct GraphedTrainStep::Impl {};

GraphedTrainStep::GraphedTrainStep(ViT& model, FusedAdamW&, Ema*, const RunConfig& cfg) {
  require_cuda_graphs(cfg, model->parameters()[0].device(), nullptr);
}

GraphedTrainStep::~GraphedTrainStep() = default;

StepOutput GraphedTrainStep::operator()(const torch::Tensor&, const torch::Tensor&, double) {
  fail("train.cuda_graph: not available in this build");
}

struct GraphedForward::Impl {};

GraphedForward::GraphedForward(ViT& model, bool) {
  require_cuda_graphs(RunConfig{}, model->parameters()[0].device(), nullptr);
}

GraphedForward::~GraphedForward() = default;

torch::Tensor GraphedForward::operator()(const torch::Tensor&) { fail("train.cuda_graph: not available in this build"); }

#endif

}  // namespace vitlab
