#include "vitlab/data/stream.h"

#include <algorithm>
#include <functional>
#include <random>

#include "vitlab/data/transform.h"
#include "vitlab/error.h"
#include "vitlab/seed.h"

namespace vitlab {

StreamLoader::StreamLoader(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last,
                           const LoaderOptions& options)
    : EpochPlan(data, order, batch, drop_last), data_(data), opt_(options) {
  if (!cpu_decoder_available())
    fail("folder: this vitlab was built without OpenCV, so image files cannot be decoded on the CPU (install "
         "libopencv-dev and rebuild; on CUDA, JPEGs decode with nvJPEG where vitlab was built with it)");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t workers = std::min<int64_t>(data_.files->workers > 0 ? data_.files->workers : cores, std::max<int64_t>(total_, 1));
  // Enough batches ahead that every worker has images to decode while the step runs.
  depth_ = static_cast<int>(std::max<int64_t>(3, (2 * workers + batch - 1) / batch + 1));
  slots_.resize(depth_);
  const auto opts = torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(opt_.device.is_cuda());
  const int64_t C = data_.files->channels, S = data_.files->size;
  for (int64_t b = 0; b < std::min<int64_t>(depth_, steps_); ++b) {
    Slot& s = slots_[b];
    s.images = torch::empty({rows(b), C, S, S}, opts);  // (b, C, S, S)
    s.labels.assign(rows(b), 0);
    s.bad.assign(rows(b), 0);
  }
  for (int64_t w = 0; w < workers && total_ > 0; ++w) workers_.emplace_back([this] { work(); });
}

StreamLoader::~StreamLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

int64_t StreamLoader::skipped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_;
}

bool StreamLoader::decode_transformed(int64_t index, uint8_t* out, std::string& error) {
  const ImageFiles& f = *data_.files;
  thread_local std::vector<uint8_t> pixels, resized;
  const int C = f.channels, S = f.size;
  const AugmentConfig* a = opt_.augment;
  const bool rrc = a && a->rrc;
  std::mt19937_64 rng(mix_seed(mix_seed(opt_.seed, kSeedImage, opt_.epoch), 0, index));
  // Training: the crop box comes from the full size; a JPEG whose box is at least 2, 4 or 8
  // times the output decodes that much smaller (data.reduced_decode) and the box scales with it.
  CropBox box;
  int factor = 1;
  bool drawn = false;
  std::function<int(int, int)> reduce;
  if (rrc && f.reduced_decode)
    reduce = [&](int fh, int fw) {
      box = random_resized_crop_box(fh, fw, a->scale, a->ratio, rng);
      drawn = true;
      for (int r : {8, 4, 2})
        if (box.height >= r * S && box.width >= r * S) return factor = r;
      return 1;
    };
  int h = 0, w = 0;
  auto t = std::chrono::steady_clock::now();
  const bool decoded = decode_image_file(f.paths[index], f.channels, pixels, h, w, error, reduce);
  clock_.lap(kDecode, t);
  if (!decoded) return false;
  const Image8 img{pixels.data(), h, w, C, static_cast<int64_t>(w) * C};
  const uint8_t* src = pixels.data();  // S x S x C, rows `stride` bytes apart
  int64_t stride = img.stride;
  if (rrc) {
    if (!drawn) box = random_resized_crop_box(h, w, a->scale, a->ratio, rng);
    if (factor > 1) {  // the decoded image is ceil(full / factor) on each side
      box.top = std::min(box.top / factor, h - 1);
      box.left = std::min(box.left / factor, w - 1);
      box.height = std::clamp(box.height / factor, 1, h - box.top);
      box.width = std::clamp(box.width / factor, 1, w - box.left);
    }
    pil_resize(crop_view(img, box), S, S, a->interpolation == "bicubic", resized);
    src = resized.data();
    stride = static_cast<int64_t>(S) * C;
  } else {
    const EvalGeometry g = eval_geometry(h, w, S, f.crop_pct, f.crop_mode);
    if (g.resize_h != h || g.resize_w != w) {
      pil_resize(img, g.resize_h, g.resize_w, f.interpolation == "bicubic", resized);
      src = resized.data();
      stride = static_cast<int64_t>(g.resize_w) * C;
    }
    src += g.crop.top * stride + static_cast<int64_t>(g.crop.left) * C;
  }
  // HWC (BGR from OpenCV, or L) -> CHW (RGB, or L)
  for (int c = 0; c < C; ++c) {
    const int from = C == 3 ? 2 - c : 0;
    uint8_t* plane = out + static_cast<int64_t>(c) * S * S;
    for (int y = 0; y < S; ++y) {
      const uint8_t* row = src + y * stride + from;
      for (int x = 0; x < S; ++x) plane[y * S + x] = row[x * C];
    }
  }
  clock_.lap(kTransform, t);
  return true;
}

void StreamLoader::work() {
  const int64_t image_bytes = static_cast<int64_t>(data_.files->channels) * data_.files->size * data_.files->size;
  const int64_t n = static_cast<int64_t>(order_.size());
  const bool training = opt_.augment != nullptr;
  try {
    for (;;) {
      int64_t job, b, row;
      uint8_t* out;
      auto t = std::chrono::steady_clock::now();
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stop_ || next_job_ >= total_) return;
        job = next_job_++;
        b = job / batch_;
        row = job - b * batch_;
        work_cv_.wait(lock, [&] { return stop_ || b < consumed_ + depth_; });
        if (stop_) return;
        out = slots_[b % depth_].images.data_ptr<uint8_t>() + row * image_bytes;
      }
      clock_.lap(kWaitForSlot, t);
      // An image that cannot be decoded is an error, or with data.skip_bad_images: in training
      // the next image of the epoch takes its place (the batch keeps its shape), in evaluation
      // it is left out of the batch.
      int64_t pos = job, skipped = 0;
      std::string error;
      bool ok = false, bad_row = false;
      for (int64_t tries = 0; tries < n && !ok; ++tries) {
        ok = decode_transformed(order_[pos], out, error);
        if (ok) break;
        if (!data_.files->skip_bad) break;
        ++skipped;
        if (!training) {
          bad_row = true;
          break;
        }
        pos = (pos + 1) % n;
      }
      std::lock_guard<std::mutex> lock(mu_);
      Slot& s = slots_[b % depth_];
      skipped_ += skipped;
      if (!ok && !bad_row) {
        if (error_.empty()) error_ = data_.files->skip_bad ? "no image of the split could be decoded (the last: " + error + ")" : error;
        stop_ = true;
        work_cv_.notify_all();
        done_cv_.notify_all();
        return;
      }
      s.labels[row] = ok ? labels_[order_[pos]] : -1;
      s.bad[row] = bad_row;
      if (++s.done == rows(b)) done_cv_.notify_all();
    }
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = std::string("image decoding failed: ") + e.what();
    stop_ = true;
    work_cv_.notify_all();
    done_cv_.notify_all();
  }
}

Dataset StreamLoader::batch(int64_t step) {
  Slot out;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (step != consumed_) fail("internal: a streamed loader takes its batches in order (asked ", step, " after ", consumed_ - 1, ")");
    Slot& s = slots_[step % depth_];
    done_cv_.wait(lock, [&] { return !error_.empty() || s.done == rows(step); });
    if (!error_.empty()) fail(error_);
    out = std::move(s);
    const int64_t next = step + depth_;
    if (next < steps_) {
      const auto opts = torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(opt_.device.is_cuda());
      s = Slot{};
      s.images = torch::empty({rows(next), data_.files->channels, data_.files->size, data_.files->size}, opts);
      s.labels.assign(rows(next), 0);
      s.bad.assign(rows(next), 0);
    }
    consumed_ = step + 1;
  }
  work_cv_.notify_all();
  torch::Tensor images = out.images;
  if (std::find(out.bad.begin(), out.bad.end(), 1) != out.bad.end())
    images = images.index_select(0, torch::tensor(out.labels, torch::kLong).ge(0).nonzero().view({-1}));
  // Pinned buffers copy asynchronously; the caching host allocator keeps each one until its copy is done.
  return {images.to(opt_.device, /*non_blocking=*/true), device_labels(out.labels, opt_.device)};
}

}  // namespace vitlab
