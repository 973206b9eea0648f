#pragma once
// Training-time augmentation as whole-batch tensor ops on the batch's device: random crop
// after zero padding, horizontal flip, RandAugment / TrivialAugment / colour jitter
// (data/auto_augment.h), mixup / cutmix, then normalisation and soft targets
// (label smoothing folded in). Randomness comes from the default generators, which the
// trainer seeds per step.
#include <torch/torch.h>

#include "vitlab/config.h"

namespace vitlab {

struct Batch {
  torch::Tensor x;        // (B, C, H, W) float, normalised
  torch::Tensor targets;  // (B, classes) float, rows sum to 1
};

torch::Tensor random_crop(const torch::Tensor& images, int64_t padding);  // (B, C, H, W), any dtype
torch::Tensor random_flip(const torch::Tensor& images);
// timm's RandomErasing on normalised images (B, C, H, W): each image with probability `prob`
// gets 1 to `count` rectangles (`count` exactly when 1) of 2-33% of its area split among them,
// aspect ratio log-uniform in [0.3, 1 / 0.3], filled per `mode` ("const": 0, "rand": one
// normal value per channel, "pixel": normal per pixel). Rectangles are drawn on the host.
torch::Tensor random_erasing(const torch::Tensor& x, double prob, const std::string& mode, int count);
torch::Tensor smooth_targets(const torch::Tensor& labels, int64_t classes, double smoothing);

// uint8 images + int64 labels -> augmented, normalised batch with soft targets.
Batch augment_batch(const torch::Tensor& images, const torch::Tensor& labels, const ModelConfig& model,
                    const TrainConfig& train);

}  // namespace vitlab
