#include "vitlab/data/augment.h"

#include <cmath>

#include "vitlab/model/vit.h"

namespace vitlab {
namespace F = torch::nn::functional;

torch::Tensor random_crop(const torch::Tensor& images, int64_t p) {
  if (p == 0) return images;
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  auto padded = F::pad(images, F::PadFuncOptions({p, p, p, p}));  // (B, C, H+2p, W+2p)
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(images.device());
  auto oy = torch::randint(2 * p + 1, {B, 1}, opts), ox = torch::randint(2 * p + 1, {B, 1}, opts);
  auto rows = (oy + torch::arange(H, opts)).view({B, 1, H, 1}).expand({B, C, H, W + 2 * p});  // (B, C, H, W+2p)
  auto cols = (ox + torch::arange(W, opts)).view({B, 1, 1, W}).expand({B, C, H, W});          // (B, C, H, W)
  return padded.gather(2, rows).gather(3, cols);                                               // (B, C, H, W)
}

torch::Tensor random_flip(const torch::Tensor& images) {
  auto flip = torch::rand({images.size(0), 1, 1, 1}, images.options().dtype(torch::kFloat)) < 0.5;  // (B, 1, 1, 1)
  return torch::where(flip, images.flip({3}), images);
}

torch::Tensor smooth_targets(const torch::Tensor& labels, int64_t classes, double smoothing) {
  auto t = torch::full({labels.size(0), classes}, smoothing / classes,
                       torch::TensorOptions().dtype(torch::kFloat).device(labels.device()));
  return t.scatter_(1, labels.view({-1, 1}), 1.0 - smoothing + smoothing / classes);
}

// One mixing coefficient per batch: X / (X + Y) ~ Beta(alpha, alpha) for X, Y ~ Gamma(alpha),
// drawn from the default CPU generator like every other random number here.
static double sample_beta(double alpha) {
  auto g = torch::_standard_gamma(torch::full({2}, alpha, torch::kDouble));
  return (g[0] / (g[0] + g[1])).item<double>();
}

Batch augment_batch(const torch::Tensor& images, const torch::Tensor& labels, const ModelConfig& model,
                    const TrainConfig& train) {
  const auto& a = train.augment;
  auto x = random_crop(images, a.crop_padding);
  if (a.flip) x = random_flip(x);
  Batch b{preprocess(x, model), smooth_targets(labels, model.num_classes, train.label_smoothing)};
  const bool mix_on = a.mixup_alpha > 0 || a.cutmix_alpha > 0;
  if (!mix_on || torch::rand({1}).item<double>() >= a.mix_prob) return b;
  // timm's Mixup: choose cutmix or mixup for the whole batch, pair each image with the
  // batch reversed, and mix the targets by the area / weight actually used.
  const bool cutmix = a.cutmix_alpha > 0 && (a.mixup_alpha == 0 || torch::rand({1}).item<double>() < 0.5);
  double lam = sample_beta(cutmix ? a.cutmix_alpha : a.mixup_alpha);
  auto other = b.x.flip({0});
  if (cutmix) {
    const int64_t H = b.x.size(2), W = b.x.size(3);
    const double cut = std::sqrt(1.0 - lam);
    const int64_t ch = static_cast<int64_t>(H * cut), cw = static_cast<int64_t>(W * cut);
    auto centre = torch::rand({2});
    const int64_t cy = static_cast<int64_t>(centre[0].item<double>() * H);
    const int64_t cx = static_cast<int64_t>(centre[1].item<double>() * W);
    const int64_t y0 = std::clamp<int64_t>(cy - ch / 2, 0, H), y1 = std::clamp<int64_t>(cy + ch / 2, 0, H);
    const int64_t x0 = std::clamp<int64_t>(cx - cw / 2, 0, W), x1 = std::clamp<int64_t>(cx + cw / 2, 0, W);
    b.x = b.x.clone();
    b.x.slice(2, y0, y1).slice(3, x0, x1).copy_(other.slice(2, y0, y1).slice(3, x0, x1));
    lam = 1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(H * W);
  } else {
    b.x = b.x * lam + other * (1.0 - lam);
  }
  b.targets = b.targets * lam + b.targets.flip({0}) * (1.0 - lam);
  return b;
}

}  // namespace vitlab
