#pragma once
// One optimisation step of vitlab's recipe: augment, forward, soft-target cross-entropy,
// backward, gradient clipping, AdamW, EMA. The trainer and vit_bench both call it, so the
// benchmark times exactly what training runs. Nothing here waits for the device.
#include <torch/torch.h>

#include "vitlab/config.h"
#include "vitlab/model/vit.h"
#include "vitlab/train/distributed.h"
#include "vitlab/train/ema.h"

namespace vitlab {

struct StepOutput {
  torch::Tensor loss;    // () on the device: the mean over the rows this process trained on
  torch::Tensor logits;  // (b, classes) on the device, for those rows
  torch::Tensor labels;  // (b) their labels
};

// images (B, C, H, W) uint8 and labels (B) int64 on the model's device; `ema` may be null.
// With `dp`, the global batch is augmented here (the same on every process), each process
// trains on its slice of B / world rows and the gradients are averaged before clipping; with
// `local` the images are this process's slice already (a streamed folder: each process
// decodes only its own images) and are augmented as they are, with draws of this process's own
// (as each of timm's DDP processes augments its own batch). Dropout and drop-path masks are
// drawn per process either way.
StepOutput train_step(ViT& model, torch::optim::Optimizer& optimizer, Ema* ema, const torch::Tensor& images,
                      const torch::Tensor& labels, const RunConfig& cfg, DataParallel* dp = nullptr,
                      bool local = false);

// Cross-entropy against soft targets (B, classes), computed in float32.
torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace vitlab
