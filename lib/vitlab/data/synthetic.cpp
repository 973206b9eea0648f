// A seeded, learnable synthetic task for tests and benchmarks: each class is a smooth random
// template (a 4x4 grid of black and white cells, upsampled); an image is its class template,
// shifted by up to one pixel, plus noise.
#include "vitlab/data/dataset.h"

namespace vitlab {
namespace {

Dataset sample(const torch::Tensor& templates, int64_t n, torch::Generator& gen) {
  namespace F = torch::nn::functional;
  const int64_t classes = templates.size(0), size = templates.size(2);
  auto labels = torch::randint(classes, {n}, gen, torch::kLong);
  auto x = templates.index_select(0, labels);  // (n, C, S, S) float in [0, 1]
  auto padded = F::pad(x, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate));
  auto shift = torch::randint(3, {2}, gen, torch::kLong);  // one shift per call keeps it cheap
  x = padded.narrow(2, shift[0].item<int64_t>(), size).narrow(3, shift[1].item<int64_t>(), size);
  x = x + 0.15 * torch::randn(x.sizes(), gen, torch::kFloat);
  return {(x.clamp(0, 1) * 255).round().to(torch::kUInt8).contiguous(), labels};
}

Dataset sample_shifted(const torch::Tensor& templates, int64_t n, torch::Generator& gen) {
  // Several chunks, each with its own shift, so shifts vary within a split.
  std::vector<torch::Tensor> images, labels;
  for (int64_t done = 0; done < n; done += 64) {
    auto d = sample(templates, std::min<int64_t>(64, n - done), gen);
    images.push_back(d.images);
    labels.push_back(d.labels);
  }
  return {torch::cat(images), torch::cat(labels)};
}

}  // namespace

Splits make_synthetic(const SyntheticConfig& c) {
  namespace F = torch::nn::functional;
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(c.seed));
  // Smooth templates: 4x4 random binary grids upsampled bicubically to the image size.
  auto coarse = torch::randint(2, {c.classes, c.channels, 4, 4}, gen, torch::kFloat);
  auto templates = F::interpolate(coarse, F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{c.image_size, c.image_size})
                                              .mode(torch::kBicubic)
                                              .align_corners(false))
                       .clamp(0, 1);
  Splits s;
  s.name = "synthetic";
  s.source = "synthetic(seed=" + std::to_string(c.seed) + ")";
  s.train = sample_shifted(templates, c.train, gen);
  s.test = sample_shifted(templates, c.test, gen);
  s.num_classes = c.classes;
  return s;
}

}  // namespace vitlab
