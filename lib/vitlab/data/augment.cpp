#include "vitlab/data/augment.h"

#include <cmath>

#include "vitlab/data/async_copy.h"
#include "vitlab/data/auto_augment.h"
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

torch::Tensor random_erasing(const torch::Tensor& x, double prob, const std::string& mode, int count) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  // Host draws from the default CPU generator (seeded per step): (B, count) rectangles as
  // (top, left, h, w), h = 0 where none.
  auto rect = torch::zeros({B, count, 4}, torch::kLong);
  auto r = rect.accessor<int64_t, 3>();
  auto draw = [] { return torch::rand({1}, torch::kDouble).item<double>(); };
  const double log_lo = std::log(0.3), log_hi = std::log(1 / 0.3);
  for (int64_t i = 0; i < B; ++i) {
    if (draw() >= prob) continue;
    const int n = count == 1 ? 1 : 1 + static_cast<int>(draw() * count);
    for (int k = 0; k < n; ++k)
      for (int attempt = 0; attempt < 10; ++attempt) {
        const double area = (0.02 + draw() * (1.0 / 3 - 0.02)) * H * W / n;
        const double aspect = std::exp(log_lo + draw() * (log_hi - log_lo));
        const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(area * aspect)));
        const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(area / aspect)));
        if (w < W && h < H) {
          r[i][k][0] = static_cast<int64_t>(draw() * (H - h + 1));
          r[i][k][1] = static_cast<int64_t>(draw() * (W - w + 1));
          r[i][k][2] = h;
          r[i][k][3] = w;
          break;
        }
      }
  }
  rect = to_device_async(rect, x.device());
  auto ys = torch::arange(H, rect.options()).view({1, 1, H, 1}), xs = torch::arange(W, rect.options()).view({1, 1, 1, W});
  torch::Tensor out = x;
  for (int k = 0; k < count; ++k) {
    auto p = rect.select(1, k).view({B, 4, 1, 1});  // (B, 4, 1, 1)
    auto top = p.narrow(1, 0, 1), left = p.narrow(1, 1, 1), h = p.narrow(1, 2, 1), w = p.narrow(1, 3, 1);
    auto mask = (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w);  // (B, 1, H, W)
    torch::Tensor fill = torch::zeros({}, x.options());
    if (mode == "pixel") fill = torch::randn(x.sizes(), x.options());
    else if (mode == "rand") fill = torch::randn({B, C, 1, 1}, x.options());
    out = torch::where(mask, fill, out);
  }
  return out;
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
  const AugmentPolicy policy = augment_policy(a, model);
  if (!policy.empty()) {  // per-image ops drawn from a generator seeded by the step's default one
    std::mt19937_64 rng(static_cast<uint64_t>(torch::randint(1LL << 62, {1}, torch::kLong).item<int64_t>()));
    x = auto_augment(x, policy, rng);
  }
  Batch b{preprocess(x, model), smooth_targets(labels, model.num_classes, train.label_smoothing)};
  if (a.re_prob > 0) b.x = random_erasing(b.x, a.re_prob, a.re_mode, a.re_count);
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
