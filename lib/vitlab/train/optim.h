#pragma once
// AdamW with two parameter groups (weight decay only on matrices, not on norms, biases,
// position embeddings or tokens) and the linear-warm-up + cosine learning-rate schedule.
#include <torch/torch.h>

#include <memory>
#include <unordered_map>

#include "vitlab/config.h"
#include "vitlab/model/vit.h"

namespace vitlab {

// torch::optim::AdamW whose step runs PyTorch's fused multi-tensor AdamW kernel when every
// parameter is on one CUDA device (LibTorch 2.x): one launch per group instead of about ten per
// tensor. Same update, same state (checkpoints are interchangeable); the plain path elsewhere.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
  // For CUDA graphs (train/cuda_graph.h): the fused kernel reads the learning rate from `lr`, a
  // float32 scalar on the parameters' device, instead of the groups' options (undefined: back to those).
  void set_device_lr(torch::Tensor lr) { device_lr_ = std::move(lr); }
  // A replayed graph stepped every parameter on the device without running step(): count that
  // step in the state too, so checkpoints hold the true step.
  void count_replayed_step();

 private:
  // Per parameter, the kernel's step counter on the device and the state's step it mirrors (a
  // reloaded checkpoint changes the latter, and the counter is rebuilt from it).
  struct Counter {
    torch::Tensor device_step;
    int64_t step = -1;
  };
  std::unordered_map<c10::TensorImpl*, Counter> counters_;
  torch::Tensor device_lr_;
};

std::unique_ptr<FusedAdamW> make_optimizer(ViT& model, const TrainConfig& cfg);
// Scales the gradients so their global L2 norm is at most `max_norm`, the arithmetic of
// torch::nn::utils::clip_grad_norm_, without its read-back of the norm to the host (which
// would stop the host from running ahead of the GPU every step).
void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);
// lr at `step` (0-based) of `total` steps with `warmup` warm-up steps.
double lr_at(int64_t step, int64_t total, int64_t warmup, const TrainConfig& cfg);
void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace vitlab
