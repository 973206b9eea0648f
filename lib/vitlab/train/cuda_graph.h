#pragma once
// CUDA graphs of the training step and of the forward pass.
//
// The training step captured once as a CUDA graph and replayed for every step after it
// (PyTorch's whole-network capture, torch.cuda.graph): one graph launch instead of the several
// hundred kernel launches of a step. It pays where the host cannot launch kernels as fast as
// the GPU runs them: the small ViTs of this project (vit_tiny on 28x28 images trains at about
// 16,000 img/s on an H100 bound by its launches, BENCHMARKS.md), not vit_small at 224, where the
// GPU is the bottleneck.
//
// The step is train_step's, unchanged: the graph records its kernels once and replays them on
// static input tensors, which each call fills. Things that live on the host and would be frozen
// in a graph are kept on the device instead: the learning rate (a device scalar the fused AdamW
// kernel reads) and the optimizer's step counters (already device scalars); the random numbers of
// augmentation and drop-path come from the CUDA generator's seed and offset, which a replay reads
// when it starts, so torch::manual_seed before a call means what it means before train_step.
#include <memory>
#include <string>

#include "vitlab/train/optim.h"
#include "vitlab/train/step.h"

namespace vitlab {

// Why the graphed step cannot run this config on `device` ("" when it can): it needs CUDA,
// LibTorch >= 2.4 (fused AdamW with a device learning rate), one process, and no mixup or
// cutmix (they draw on the host).
std::string cuda_graph_unsupported(const RunConfig& cfg, const torch::Device& device, const DataParallel* dp);
// Fails with "`what`: <the reason>" where cuda_graph_unsupported is not empty.
void require_cuda_graphs(const RunConfig& cfg, const torch::Device& device, const DataParallel* dp,
                         const std::string& what = "train.cuda_graph");

class GraphedTrainStep {
 public:
  // Only where cuda_graph_unsupported(...) is empty. Keeps references to its arguments.
  GraphedTrainStep(ViT& model, FusedAdamW& optimizer, Ema* ema, const RunConfig& cfg);
  ~GraphedTrainStep();
  // train_step(model, optimizer, ema, images, labels, cfg) at learning rate `lr`. The first
  // kWarmupSteps calls run it plainly (they create the optimizer's state and the libraries'
  // handles, which a graph must not record), the next captures it, every later one replays it.
  // The outputs are the graph's own tensors, overwritten by the next call: use them first.
  StepOutput operator()(const torch::Tensor& images, const torch::Tensor& labels, double lr);

  static constexpr int kWarmupSteps = 3;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The forward pass on uint8 images, logits = model(preprocess(images)) in eval mode without
// gradients (under bf16 autocast when `bf16`), as a CUDA graph for one batch shape: the first
// batch of that shape runs plainly, the second is captured, later ones replay. Batches of
// another shape (an evaluation's last, shorter one) run plainly. The logits (B, classes) are the
// graph's own tensor, overwritten by the next call. Only where cuda_graph_unsupported is empty.
class GraphedForward {
 public:
  GraphedForward(ViT& model, bool bf16);
  ~GraphedForward();
  torch::Tensor operator()(const torch::Tensor& images);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vitlab
