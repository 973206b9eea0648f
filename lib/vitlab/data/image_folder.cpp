// Image folders in torchvision's ImageFolder / timm layout: root/<class>/<image>, class index =
// position in the sorted folder names. root/train + root/val (or root/test) give the splits;
// a root without train/ is a test split only (for evaluation). Decoded once, in parallel.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "vitlab/data/dataset.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

#ifdef VITLAB_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace vitlab {

#ifdef VITLAB_HAVE_OPENCV
namespace {

bool is_image(const std::string& path) {
  const std::string ext = extension_lower(path);
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp"})
    if (ext == e) return true;
  return false;
}

std::vector<std::string> class_folders(const std::string& root) {
  std::vector<std::string> names;
  for (const auto& n : list_directory(root))  // sorted
    if (n[0] != '.' && is_directory(join_path(root, n))) names.push_back(n);
  if (names.empty()) fail("folder:", root, ": no class folders (expected root/<class>/<image>)");
  return names;
}

Dataset decode_split(const std::string& root, const std::vector<std::string>& classes, const DataConfig& cfg) {
  std::vector<std::pair<std::string, int64_t>> files;
  for (const auto& name : class_folders(root)) {
    auto it = std::find(classes.begin(), classes.end(), name);
    if (it == classes.end()) fail(join_path(root, name), ": class folder not present in the training split");
    for (const auto& f : list_directory(join_path(root, name))) {  // sorted
      const std::string path = join_path(join_path(root, name), f);
      if (is_image(path) && is_regular_file(path)) files.emplace_back(path, it - classes.begin());
    }
  }
  if (files.empty()) fail("folder:", root, ": no images found");

  const int channels = cfg.channels == 0 ? 3 : cfg.channels;
  const int flag = channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR;
  // The first image fixes the size unless data.image_size asks for a resize.
  cv::Mat first = cv::imread(files[0].first, flag);
  if (first.empty()) fail(files[0].first, ": unreadable image");
  const int H = cfg.image_size > 0 ? cfg.image_size : first.rows;
  const int W = cfg.image_size > 0 ? cfg.image_size : first.cols;
  const int64_t n = static_cast<int64_t>(files.size());
  auto images = torch::empty({n, channels, H, W}, torch::kUInt8);
  auto labels = torch::empty({n}, torch::kLong);

  std::atomic<int64_t> next{0};
  std::mutex err_mu;
  std::string error;
  auto work = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      {
        std::lock_guard<std::mutex> lock(err_mu);
        if (!error.empty()) return;
      }
      const auto& [path, label] = files[i];
      cv::Mat img = cv::imread(path, flag);
      std::string problem;
      if (img.empty()) {
        problem = path + ": unreadable image";
      } else if (cfg.image_size == 0 && (img.rows != H || img.cols != W)) {
        problem = path + ": image is " + std::to_string(img.cols) + "x" + std::to_string(img.rows) + " but " +
                  files[0].first + " is " + std::to_string(W) + "x" + std::to_string(H) +
                  " (set data.image_size to resize all images)";
      }
      if (!problem.empty()) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (error.empty()) error = problem;
        return;
      }
      if (channels == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
      // HWC (OpenCV) -> CHW (vitlab), then the resize (and crop) every dataset gets.
      auto hwc = torch::from_blob(img.data, {img.rows, img.cols, channels},
                                  {static_cast<int64_t>(img.step[0]), channels, 1}, torch::kUInt8);
      auto chw = hwc.permute({2, 0, 1}).unsqueeze(0);  // (1, C, h, w)
      if (cfg.image_size > 0) chw = resize_images(chw, cfg.image_size, cfg.crop_pct, cfg.interpolation);
      images[i].copy_(chw[0]);
      labels[i] = label;
    }
  };
  int workers = cfg.workers > 0 ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (!error.empty()) fail(error);
  return {images, labels};
}

}  // namespace

Splits load_image_folder(const std::string& dir, const DataConfig& cfg) {
  const std::string& root = dir;
  if (!is_directory(root)) fail("folder:", dir, ": not a directory");
  Splits s;
  s.name = "folder:" + dir;
  s.source = dir;
  std::string test_root = root;
  if (is_directory(join_path(root, "train"))) {
    s.class_names = class_folders(join_path(root, "train"));
    s.train = decode_split(join_path(root, "train"), s.class_names, cfg);
    test_root = is_directory(join_path(root, "val")) ? join_path(root, "val") : join_path(root, "test");
    if (!is_directory(test_root)) fail("folder:", dir, ": has train/ but neither val/ nor test/");
  } else {
    s.class_names = class_folders(root);
  }
  s.test = decode_split(test_root, s.class_names, cfg);
  if (s.train.size() && s.train.images.sizes().slice(1) != s.test.images.sizes().slice(1))
    fail("folder:", dir, ": train and test images differ in size (set data.image_size to resize all images)");
  s.num_classes = static_cast<int64_t>(s.class_names.size());
  return s;
}

#else

Splits load_image_folder(const std::string& dir, const DataConfig&) {
  fail("folder:", dir, ": this vitlab was built without OpenCV, so image folders cannot be read "
       "(install libopencv-dev and rebuild)");
}

#endif

}  // namespace vitlab
