#include "vitlab/data/dataset.h"

#include "vitlab/error.h"
#include "vitlab/io/files.h"

namespace vitlab {

const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

Dataset Dataset::slice(int64_t begin, int64_t end) const {
  return {images.slice(0, begin, end), labels.slice(0, begin, end)};
}

int64_t Splits::channels() const { return (train.size() ? train : test).images.size(1); }
int64_t Splits::image_size() const { return (train.size() ? train : test).images.size(2); }

json Splits::describe() const {
  return json{{"name", name},          {"source", source},           {"train_size", train.size()},
              {"val_size", val.size()}, {"test_size", test.size()},   {"image_size", image_size()},
              {"channels", channels()}, {"classes", num_classes}};
}

torch::Tensor resize_images(const torch::Tensor& images, int64_t size) {
  namespace F = torch::nn::functional;
  if (images.size(2) == size && images.size(3) == size) return images;
  auto out = torch::empty({images.size(0), images.size(1), size, size}, torch::kUInt8);
  for (int64_t i = 0; i < images.size(0); i += 1024) {  // chunks keep the float copy small
    auto x = images.slice(0, i, i + 1024).to(torch::kFloat);
    bool shrink = size < images.size(2) || size < images.size(3);
    auto y = F::interpolate(x, F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{size, size})
                                   .mode(torch::kBilinear)
                                   .align_corners(false)
                                   .antialias(shrink));
    out.slice(0, i, i + 1024).copy_(y.round().clamp(0, 255).to(torch::kUInt8));
  }
  return out;
}

static bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

Splits load_data(const DataConfig& cfg) {
  cfg.validate();
  const std::string& spec = cfg.spec;
  Splits s;
  if (spec == "fashion-mnist") {
    if (!is_directory(kFashionMnistDir))
      fail("data.spec fashion-mnist: ", kFashionMnistDir, " not found (install the Debian package "
           "dataset-fashion-mnist, scripts/setup.sh does, or point idx:DIR at a copy)");
    s = load_idx(kFashionMnistDir);
    s.name = "fashion-mnist";
  } else if (starts_with(spec, "idx:")) {
    s = load_idx(spec.substr(4));
  } else if (starts_with(spec, "cifar10:")) {
    s = load_cifar(spec.substr(8), 10);
  } else if (starts_with(spec, "cifar100:")) {
    s = load_cifar(spec.substr(9), 100);
  } else if (starts_with(spec, "folder:")) {
    s = load_image_folder(spec.substr(7), cfg);
  } else if (spec == "synthetic") {
    s = make_synthetic(cfg.synthetic);
  } else {
    fail("data.spec: unknown dataset '", spec,
         "' (expected fashion-mnist, idx:PATH_PREFIX, cifar10:DIR, cifar100:DIR, folder:DIR or synthetic)");
  }
  if (cfg.image_size > 0) {
    s.train.images = resize_images(s.train.images, cfg.image_size);
    s.test.images = resize_images(s.test.images, cfg.image_size);
  }
  const int64_t n = s.train.size();
  if (cfg.val_size > 0 && n > 0) {
    if (cfg.val_size >= n)
      fail("data.val_size: ", cfg.val_size, " leaves no training images (", spec, " has ", n, ")");
    s.val = s.train.slice(n - cfg.val_size, n);
    s.train = s.train.slice(0, n - cfg.val_size);
  }
  return s;
}

void check_data_fits_model(const Splits& d, const ModelConfig& m) {
  if (d.channels() != m.in_chans || d.image_size() != m.image_size || d.num_classes > m.num_classes)
    fail("data '", d.name, "' has ", d.channels(), "x", d.image_size(), "x", d.image_size(), " images in ",
         d.num_classes, " classes but the model expects ", m.in_chans, "x", m.image_size, "x", m.image_size,
         " and ", m.num_classes, " classes: set model.in_chans=", d.channels(), " model.image_size=",
         d.image_size(), " model.num_classes=", d.num_classes, " (or data.image_size to resize)");
}

}  // namespace vitlab
