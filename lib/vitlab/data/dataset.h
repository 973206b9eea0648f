#pragma once
// Every dataset lands in one in-memory layout: uint8 images (N, C, H, W) and int64 labels (N).
// Small datasets then live on the training device whole (see loader.h).
#include <torch/torch.h>

#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

struct Dataset {
  torch::Tensor images;  // (N, C, H, W) uint8
  torch::Tensor labels;  // (N) int64
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  Dataset slice(int64_t begin, int64_t end) const;
};

struct Splits {
  std::string name;    // e.g. "fashion-mnist"
  std::string source;  // where it was read from
  Dataset train, val, test;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // may be empty
  int64_t channels() const;
  int64_t image_size() const;
  json describe() const;  // the "data" record of a results JSON
};

// Parses data.spec, loads the data, resizes if data.image_size asks for it, and carves the
// validation split off the end of the training split.
Splits load_data(const DataConfig& cfg);

// The loaders behind the specs (each fills train and test; val is carved by load_data).
// IDX (MNIST family): `prefix` + {train,t10k|test}-{images-idx3,labels-idx1}-ubyte[.gz]; a
// directory prefix means the files inside it.
Splits load_idx(const std::string& prefix);
Dataset read_idx(const std::string& images_path, const std::string& labels_path);
Splits load_cifar(const std::string& dir, int classes);  // classes: 10 or 100
Splits load_image_folder(const std::string& dir, const DataConfig& cfg);
Splits make_synthetic(const SyntheticConfig& cfg);

// Resizes uint8 images (B, C, H, W) to (B, C, size, size). crop_pct 0: the whole image
// (bilinear antialiased when shrinking, or bicubic antialiased as PIL). crop_pct > 0: timm's
// evaluation transform (torchvision Resize(int) then CenterCrop): the shorter side to
// floor(size / crop_pct), the longer in proportion, then the centre size x size crop.
torch::Tensor resize_images(const torch::Tensor& images, int64_t size, double crop_pct = 0.0,
                            const std::string& interpolation = "bilinear");

// Fails with a message naming the data and the model settings to change when they disagree.
void check_data_fits_model(const Splits& data, const ModelConfig& model);

extern const char* const kFashionMnistDir;

}  // namespace vitlab
