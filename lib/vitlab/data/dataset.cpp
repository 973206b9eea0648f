#include "vitlab/data/dataset.h"

#include <algorithm>
#include <cmath>

#include "vitlab/data/holdout.h"
#include "vitlab/data/transform.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

namespace vitlab {

const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

Dataset Dataset::select(const torch::Tensor& index) const {
  if (!streamed()) return {images.index_select(0, index.to(images.device())), labels.index_select(0, index), nullptr};
  auto subset = std::make_shared<ImageFiles>(*files);
  subset->paths.clear();
  auto idx = index.to(torch::kLong).contiguous();
  for (int64_t i = 0; i < idx.numel(); ++i) subset->paths.push_back(files->paths[idx.data_ptr<int64_t>()[i]]);
  return {torch::Tensor(), labels.index_select(0, idx), subset};
}

static const Dataset& any_split(const Splits& s) { return s.train.size() ? s.train : s.test; }

int64_t Splits::channels() const {
  const Dataset& d = any_split(*this);
  return d.streamed() ? d.files->channels : d.images.size(1);
}
int64_t Splits::image_size() const {
  const Dataset& d = any_split(*this);
  return d.streamed() ? d.files->size : d.images.size(2);
}

json Splits::describe() const {
  json j{{"name", name},          {"source", source},           {"train_size", train.size()},
         {"val_size", val.size()}, {"test_size", test.size()},   {"image_size", image_size()},
         {"channels", channels()}, {"classes", num_classes},     {"streamed", any_split(*this).streamed()}};
  if (unlabelled) j["unlabelled"] = true;
  if (val.size() > 0) {  // val_size as the config has it: a count, or a fraction
    const json size = val_size >= 1 ? json(static_cast<int64_t>(val_size)) : json(val_size);
    j["holdout"] = {{"val_size", size}, {"val_seed", val_seed}, {"stratified", true}};
  }
  return j;
}

torch::Tensor resize_images(const torch::Tensor& images, int64_t size, double crop_pct,
                            const std::string& interpolation, const std::string& crop_mode) {
  namespace F = torch::nn::functional;
  const int64_t H = images.size(2), W = images.size(3);
  const EvalGeometry g = eval_geometry(static_cast<int>(H), static_cast<int>(W), static_cast<int>(size), crop_pct, crop_mode);
  const int64_t rh = g.resize_h, rw = g.resize_w;  // the size of the resize before the crop
  torch::Tensor out = images;
  if (rh != H || rw != W) {
    out = torch::empty({images.size(0), images.size(1), rh, rw}, torch::kUInt8);
    const bool bicubic = interpolation == "bicubic";
    const bool pil = bicubic || rh < H || rw < W;  // antialiased: PIL's filters
    F::InterpolateFuncOptions::mode_t mode = torch::kBilinear;
    if (bicubic) mode = torch::kBicubic;
    auto resize = [&](const torch::Tensor& x, int64_t h, int64_t w) {
      auto y = F::interpolate(x.to(torch::kFloat), F::InterpolateFuncOptions()
                                                     .size(std::vector<int64_t>{h, w})
                                                     .mode(mode)
                                                     .align_corners(false)
                                                     .antialias(pil));
      return y.round().clamp(0, 255).to(torch::kUInt8);
    };
    for (int64_t i = 0; i < images.size(0); i += 1024) {  // chunks keep the float copy small
      auto x = images.slice(0, i, i + 1024);
      // PIL resizes in two passes, width first, rounding to 8 bits in between; so does this
      // (an antialiased pass at scale 1 is the identity), which brings it within one grey level
      // of PIL's fixed-point arithmetic.
      if (pil && rw != W) x = resize(x, H, rw);
      out.slice(0, i, i + 1024).copy_(resize(x, rh, rw));
    }
  }
  if (rh == size && rw == size) return out;
  const int64_t top = g.crop.top, left = g.crop.left;
  return out.slice(2, top, top + size).slice(3, left, left + size).contiguous();  // (B, C, size, size)
}

static bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

Splits load_data(const DataConfig& cfg, const ModelConfig* model) {
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
    // Decoded for the model: its channels (timm's input_img_mode L or RGB), its size, and its
    // classes by name when it has names.
    const int channels = cfg.channels > 0 ? cfg.channels : model && model->in_chans == 1 ? 1 : 3;
    const int size = cfg.image_size > 0 ? cfg.image_size : model ? model->image_size : 0;
    s = load_image_folder(spec.substr(7), cfg, channels, size, model ? model->label_names : std::vector<std::string>{});
  } else if (spec == "synthetic") {
    s = make_synthetic(cfg.synthetic);
  } else {
    fail("data.spec: unknown dataset '", spec,
         "' (expected fashion-mnist, idx:PATH_PREFIX, cifar10:DIR, cifar100:DIR, folder:DIR or synthetic)");
  }
  if (cfg.image_size > 0 && !starts_with(spec, "folder:")) {  // image folders resize as they decode
    s.train.images = resize_images(s.train.images, cfg.image_size, cfg.crop_pct, cfg.interpolation, cfg.crop_mode);
    s.test.images = resize_images(s.test.images, cfg.image_size, cfg.crop_pct, cfg.interpolation, cfg.crop_mode);
  }
  if (cfg.val_size > 0 && s.train.size() > 0) {
    const HoldOut h = stratified_holdout(s.train.labels, cfg.val_size, static_cast<uint64_t>(cfg.val_seed));
    s.val = s.train.select(h.val);
    s.train = s.train.select(h.train);
    s.val_size = cfg.val_size;
    s.val_seed = cfg.val_seed;
  }
  return s;
}

void check_data_fits_model(const Splits& d, const ModelConfig& m) {
  if (m.num_classes == 0)
    fail("model.num_classes: 0, a backbone without a classifier, gives features, not classes: give it one ",
         "(vit_train --init-from CHECKPOINT --set model.num_classes=", std::max<int64_t>(d.num_classes, 2), ")");
  if (d.channels() != m.in_chans || d.image_size() != m.image_size || d.num_classes > m.num_classes)
    fail("data '", d.name, "' has ", d.channels(), "x", d.image_size(), "x", d.image_size(), " images in ",
         d.num_classes, " classes but the model expects ", m.in_chans, "x", m.image_size, "x", m.image_size,
         " and ", m.num_classes, " classes: set model.in_chans=", d.channels(), " model.image_size=",
         d.image_size(), " model.num_classes=", d.num_classes, " (or data.image_size to resize)");
}

}  // namespace vitlab
