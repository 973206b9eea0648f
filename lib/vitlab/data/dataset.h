#pragma once
// A dataset split is either in memory, uint8 images (N, C, H, W) that small datasets keep on the
// training device whole (IDX, CIFAR, synthetic), or streamed: a list of image files that
// worker threads decode and transform batch by batch (image folders; data/stream.h).
// Both have int64 labels (N) in memory.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

// A streamed split's files and how each becomes a (channels, size, size) uint8 image when it is
// not augmented: resize_images' geometry (crop_pct, crop_mode), PIL's filter (interpolation).
struct ImageFiles {
  std::vector<std::string> paths;
  int channels = 3;  // 1: L (luma), 3: RGB
  int size = 0;
  double crop_pct = 0.0;
  std::string crop_mode = "center";
  std::string interpolation = "bilinear";
  bool skip_bad = false;  // data.skip_bad_images
  int workers = 0;        // decode threads (0: all cores)
  std::string decode = "auto";  // data.decode: "auto" (nvJPEG for a CUDA device where built) or "cpu"
  double hw_decoder_load = 1.0;  // data.hw_decoder_load
  bool reduced_decode = true;   // data.reduced_decode
};

struct Dataset {
  torch::Tensor images;  // (N, C, H, W) uint8 in memory; undefined when streamed
  torch::Tensor labels;  // (N) int64
  std::shared_ptr<const ImageFiles> files = nullptr;  // streamed: labels[i] is the class of files->paths[i]
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  bool streamed() const { return files != nullptr; }
  Dataset select(const torch::Tensor& index) const;  // the samples at `index` (int64), in that order
};

struct Splits {
  std::string name;    // e.g. "fashion-mnist"
  std::string source;  // where it was read from
  Dataset train, val, test;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // may be empty
  bool unlabelled = false;  // a folder of plain images (no class folders): labels unknown, all 0
  double val_size = 0;                   // data.val_size and data.val_seed of the hold-out
  int val_seed = 0;
  int64_t channels() const;
  int64_t image_size() const;
  json describe() const;  // the "data" record of a results JSON
};

// Parses data.spec and loads the data (an image folder is only listed), resizes in-memory data
// if data.image_size asks for it, and holds out the validation split (data/holdout.h). `model`,
// when given, is what an image folder is decoded for: its channels (unless data.channels), its
// image size (unless data.image_size) and its class names (model.label_names: the folder's
// class folders are matched to them by name). A folder holding images and no class folders is
// one unlabelled test split (Splits::unlabelled: for predictions).
Splits load_data(const DataConfig& cfg, const ModelConfig* model = nullptr);

// The loaders behind the specs (each fills train and test; val is carved by load_data).
// IDX (MNIST family): `prefix` + {train,t10k|test}-{images-idx3,labels-idx1}-ubyte[.gz]; a
// directory prefix means the files inside it.
Splits load_idx(const std::string& prefix);
Dataset read_idx(const std::string& images_path, const std::string& labels_path);
Splits load_cifar(const std::string& dir, int classes);  // classes: 10 or 100
// Lists root/<class>/<image> (or root/train + root/val|test); every file whose extension names an
// image format is listed, the rest ignored. `class_names` (may be empty: the sorted class
// folders of the training split) fixes the class index of each folder by name.
Splits load_image_folder(const std::string& dir, const DataConfig& cfg, int channels, int size,
                         const std::vector<std::string>& class_names);
// Whether image files can be decoded on the CPU (vitlab built with OpenCV).
bool cpu_decoder_available();
// timm's class map file: one class name a line, the line number its class index (trailing blank
// lines ignored); errors name the file and line.
std::vector<std::string> read_class_map(const std::string& path);
// Decodes one image file to 8-bit pixels, h x w x channels, BGR for 3 channels (OpenCV's order)
// or L (PIL's luma) for 1, ignoring EXIF orientation as PIL does. Returns false with `error`
// naming the file when it cannot be read, is no image, or is a truncated JPEG. `reduce`, where
// given, is asked with a JPEG's full (h, w) by which factor (1, 2, 4 or 8) to scale it down in
// the decode; the image then comes at ceil(h / factor) x ceil(w / factor).
bool decode_image_file(const std::string& path, int channels, std::vector<uint8_t>& pixels, int& h, int& w,
                       std::string& error, const std::function<int(int, int)>& reduce = {});
// A JPEG's (height, width) from its frame header, without decoding; false if none is found.
bool jpeg_size(const unsigned char* data, size_t size, int& h, int& w);
// The (height, width) an image file's header claims, for the formats image folders hold (JPEG,
// PNG, BMP, PNM, TIFF, WebP); false when the bytes are none of them or the header is cut short.
bool image_header_size(const unsigned char* data, size_t size, int64_t& h, int64_t& w);
// The most pixels an image may have: decode_image_file refuses larger ones before decoding.
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;
// Whether a JPEG ends with its end-of-image marker (in its last KiB): a file cut short must be an
// error, where decoders pad it with grey and at most warn.
bool jpeg_complete(const unsigned char* data, size_t size);
Splits make_synthetic(const SyntheticConfig& cfg);

// Resizes uint8 images (B, C, H, W) to (B, C, size, size). crop_pct 0: the whole image
// (bilinear antialiased when shrinking, or bicubic antialiased as PIL). crop_pct > 0: timm's
// evaluation transform (torchvision Resize(int) then CenterCrop): the shorter side to
// floor(size / crop_pct), the longer in proportion (crop_mode "squash": both sides to it), then
// the centre size x size crop (data/transform.h: eval_geometry).
torch::Tensor resize_images(const torch::Tensor& images, int64_t size, double crop_pct = 0.0,
                            const std::string& interpolation = "bilinear", const std::string& crop_mode = "center");

// Fails with a message naming the data and the model settings to change when they disagree, or
// when the model has no classifier (num_classes 0) to score the data with.
void check_data_fits_model(const Splits& data, const ModelConfig& model);

extern const char* const kFashionMnistDir;

}  // namespace vitlab
