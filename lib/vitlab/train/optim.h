#pragma once
// AdamW with two parameter groups (weight decay only on matrices, not on norms, biases,
// position embeddings or tokens) and the linear-warm-up + cosine learning-rate schedule.
#include <torch/torch.h>

#include <memory>

#include "vitlab/config.h"
#include "vitlab/model/vit.h"

namespace vitlab {

std::unique_ptr<torch::optim::AdamW> make_optimizer(ViT& model, const TrainConfig& cfg);
// lr at `step` (0-based) of `total` steps with `warmup` warm-up steps.
double lr_at(int64_t step, int64_t total, int64_t warmup, const TrainConfig& cfg);
void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace vitlab
