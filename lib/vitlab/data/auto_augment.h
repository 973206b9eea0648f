#pragma once
// timm's RandAugment (its string syntax, "rand-m9-mstd0.5-inc1"), torchvision's
// TrivialAugmentWide ("trivial") and ColorJitter as batched tensor ops on uint8 images
// (B, C, H, W), on the batch's device: the CPU in a CPU run, the GPU after nvJPEG or the copy.
// Each op reproduces the PIL operation timm and torchvision call (ImageOps, ImageEnhance,
// Image.transform / Image.rotate, with Pillow's rounding), so a fixed op at a fixed magnitude
// gives PIL's pixels to within one grey level (tests/test_auto_augment.cpp against
// tests/fixtures/auto_augment/). Which ops run, and their magnitudes and signs, is drawn per
// image on the host.
#include <torch/torch.h>

#include <random>
#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

// The PIL operations. Arguments as PIL takes them: Rotate degrees (counter-clockwise), Shear the
// affine coefficient, Translate pixels (input x = output x + arg), Posterize bits kept, Solarize
// the threshold, SolarizeAdd the amount added below 128, the enhancers their blend factor.
enum class PilOp {
  AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd,
  Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY
};
PilOp pil_op(const std::string& name);  // "Rotate", ... (fails naming the op)

struct OpCall {
  PilOp op;
  double arg = 0;
};

// How the geometric ops sample (PIL's NEAREST, BILINEAR or BICUBIC transform filters) and
// what they fill outside the image (one value per channel).
struct Resample {
  std::string filter = "bilinear";
  std::vector<double> fill{0};
};

// A parsed policy: train.augment.auto_augment and train.augment.color_jitter.
struct AugmentPolicy {
  std::string kind;            // "rand", "trivial" or "" (none)
  std::vector<std::string> ops;  // RandAugment's op names (timm's _RAND_[INCREASING_]TRANSFORMS)
  std::vector<double> weights;   // "w0": timm's choice weights (ops drawn without replacement)
  double magnitude = 10, magnitude_std = 0, magnitude_max = 10, prob = 0.5;
  int layers = 2;
  std::vector<double> jitter;  // ColorJitter's brightness, contrast, saturation (0: off)
  // The geometric ops' sampling: timm's for RandAugment (the training interpolation, filled with
  // round(255 mean)), torchvision's for TrivialAugmentWide (nearest, filled with 0).
  Resample resample;
  bool empty() const { return kind.empty() && jitter.empty(); }
};
// Errors name train.augment.auto_augment / color_jitter.
AugmentPolicy augment_policy(const AugmentConfig& a, const ModelConfig& model);

// One image's ops, in order, for an h x w image.
std::vector<OpCall> draw_ops(const AugmentPolicy& p, int h, int w, std::mt19937_64& rng);

// Applies op `op` with per-image `args` to uint8 images (b, C, H, W).
torch::Tensor apply_pil_op(const torch::Tensor& images, PilOp op, const std::vector<double>& args,
                           const Resample& resample);

// Draws every image's ops from `rng` and applies them, batched by op.
torch::Tensor auto_augment(const torch::Tensor& images, const AugmentPolicy& p, std::mt19937_64& rng);

}  // namespace vitlab
