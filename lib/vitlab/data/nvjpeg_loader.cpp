#include "vitlab/data/nvjpeg_loader.h"

#ifdef VITLAB_WITH_NVJPEG

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fcntl.h>
#include <nvjpeg.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "vitlab/data/transform.h"
#include "vitlab/error.h"
#include "vitlab/kernels/image_resize.h"
#include "vitlab/seed.h"

namespace vitlab {
namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("nvJPEG loader: ", what, ": ", cudaGetErrorString(e));
}
void check_nvjpeg(nvjpegStatus_t s, const char* what) {
  if (s != NVJPEG_STATUS_SUCCESS) fail("nvJPEG loader: ", what, " failed (nvjpegStatus ", static_cast<int>(s), ")");
}

bool read_file(const std::string& path, std::vector<unsigned char>& out, std::string& error) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot open (" + std::strerror(errno) + ")";
    return false;
  }
  unsigned char buf[1 << 16];
  for (ssize_t got; (got = ::read(fd, buf, sizeof buf)) != 0;) {
    if (got < 0) {
      if (errno == EINTR) continue;
      error = path + ": cannot read (" + std::strerror(errno) + ")";
      ::close(fd);
      return false;
    }
    out.insert(out.end(), buf, buf + got);
  }
  ::close(fd);
  if (out.size() < 4 || out[0] != 0xFF || out[1] != 0xD8) {
    error = path + ": not a JPEG (the nvJPEG loader decodes JPEGs only; data.decode=cpu reads other formats)";
    return false;
  }
  if (!jpeg_complete(out.data(), out.size())) {  // a JPEG cut short: as decode_image_file, an error
    error = path + ": truncated JPEG (no end-of-image marker)";
    return false;
  }
  return true;
}

// nvJPEG's handles and decode states, made once per process and lent to one loader at a time:
// creating the hardware decoder's handle takes long enough to show in every epoch's start.
struct Decoders {
  nvjpegHandle_t hw_handle = nullptr, sw_handle = nullptr;
  nvjpegJpegState_t hw_state = nullptr, sw_state = nullptr;
  int batched_size = 0;  // what nvjpegDecodeBatchedInitialize was last told
};

std::mutex pool_mu;
std::vector<std::unique_ptr<Decoders>> pool;  // idle ones; their handles live as long as the process

std::unique_ptr<Decoders> borrow_decoders() {
  {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (!pool.empty()) {
      auto d = std::move(pool.back());
      pool.pop_back();
      return d;
    }
  }
  auto d = std::make_unique<Decoders>();
  // The hardware decoder where the GPU has one (A100, H100), for the batched call; the hybrid
  // (CPU Huffman + GPU) decoder for images it refuses.
  if (nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE, nullptr, nullptr, 0, &d->hw_handle) != NVJPEG_STATUS_SUCCESS)
    check_nvjpeg(nvjpegCreateSimple(&d->hw_handle), "nvjpegCreateSimple");
  check_nvjpeg(nvjpegJpegStateCreate(d->hw_handle, &d->hw_state), "nvjpegJpegStateCreate");
  check_nvjpeg(nvjpegCreateSimple(&d->sw_handle), "nvjpegCreateSimple");
  check_nvjpeg(nvjpegJpegStateCreate(d->sw_handle, &d->sw_state), "nvjpegJpegStateCreate");
  return d;
}

void return_decoders(std::unique_ptr<Decoders> d) {
  std::lock_guard<std::mutex> lock(pool_mu);
  pool.push_back(std::move(d));
}

class NvjpegLoader : public Loader, private EpochPlan {
 public:
  NvjpegLoader(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last,
               const LoaderOptions& options)
      : EpochPlan(data, order, batch, drop_last), data_(data), opt_(options) {
    depth_ = 3;
    slots_.resize(depth_);
    for (int64_t b = 0; b < std::min<int64_t>(depth_, steps_); ++b) reset_slot(b);

    c10::cuda::CUDAGuard guard(opt_.device);
    dec_ = borrow_decoders();
    stream_ = c10::cuda::getStreamFromPool(false, opt_.device.index());
    for (auto& s : slots_) check_cuda(cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming), "cudaEventCreate");

    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int readers = std::max(1, std::min(data_.files->workers > 0 ? data_.files->workers : cores, 8));
    for (int w = 0; w < readers && total_ > 0; ++w) threads_.emplace_back([this] { read_loop(); });
    if (total_ > 0) threads_.emplace_back([this] { decode_loop(); });
  }

  ~NvjpegLoader() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    cudaStreamSynchronize(stream_.stream());
    for (auto& s : slots_) cudaEventDestroy(s.event);
    return_decoders(std::move(dec_));
  }

  int64_t steps() const override { return steps_; }
  int64_t skipped() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return skipped_;
  }

  Dataset batch(int64_t step) override {
    torch::Tensor images;
    std::vector<int64_t> labels;
    std::vector<char> bad;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (step != consumed_) fail("internal: a streamed loader takes its batches in order");
      Slot& s = slots_[step % depth_];
      cv_.wait(lock, [&] { return !error_.empty() || s.decoded; });
      if (!error_.empty()) fail(error_);
      // The step's stream waits for the decode; the caching allocator learns that it uses the images.
      check_cuda(cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(opt_.device.index()).stream(), s.event, 0),
                 "cudaStreamWaitEvent");
      images = std::move(s.images);
      labels = s.labels;
      bad = s.bad;
      if (step + depth_ < steps_) reset_slot(step + depth_);
      consumed_ = step + 1;
    }
    cv_.notify_all();
    images.record_stream(c10::cuda::getCurrentCUDAStream(opt_.device.index()));
    if (std::find(bad.begin(), bad.end(), 1) != bad.end())  // evaluation: left out
      images = images.index_select(0, torch::tensor(labels, torch::kLong).ge(0).nonzero().view({-1}).to(opt_.device));
    return {images, device_labels(labels, opt_.device)};
  }

 private:
  struct Slot {
    std::vector<std::vector<unsigned char>> bytes;
    std::vector<std::string> errors;  // per row: "" or why its file could not be read
    std::vector<int64_t> labels;
    std::vector<char> bad;
    int64_t read = 0;
    bool decoded = false;
    torch::Tensor images;
    cudaEvent_t event = nullptr;
  };

  void reset_slot(int64_t b) {  // under mu_ (or before the threads start)
    Slot& s = slots_[b % depth_];
    s.bytes.assign(rows(b), {});
    s.errors.assign(rows(b), "");
    s.labels.assign(rows(b), -1);
    s.bad.assign(rows(b), 0);
    s.read = 0;
    s.decoded = false;
    s.images = torch::Tensor();
  }

  void fail_all(const std::string& e) {  // under mu_
    if (error_.empty()) error_ = e;
    stop_ = true;
    cv_.notify_all();
  }

  void read_loop() {
    try {
      for (;;) {
        int64_t job, b;
        std::vector<unsigned char> buf;
        {
          std::unique_lock<std::mutex> lock(mu_);
          if (stop_ || next_job_ >= total_) return;
          job = next_job_++;
          b = job / batch_;
          cv_.wait(lock, [&] { return stop_ || b < consumed_ + depth_; });
          if (stop_) return;
        }
        std::string error;
        read_file(data_.files->paths[order_[job]], buf, error);
        std::lock_guard<std::mutex> lock(mu_);
        Slot& s = slots_[b % depth_];
        const int64_t row = job - b * batch_;
        s.bytes[row] = std::move(buf);
        s.errors[row] = error;
        if (++s.read == rows(b)) cv_.notify_all();
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      fail_all(std::string("reading images failed: ") + e.what());
    }
  }

  void decode_loop() {
    try {
      c10::cuda::CUDAGuard device(opt_.device);
      c10::cuda::CUDAStreamGuard on(stream_);
      for (int64_t b = 0; b < steps_; ++b) {
        Slot* s;
        {
          std::unique_lock<std::mutex> lock(mu_);
          s = &slots_[b % depth_];
          cv_.wait(lock, [&] { return stop_ || (b < consumed_ + depth_ && s->read == rows(b) && !s->decoded); });
          if (stop_) return;
        }
        decode(b, *s);  // the slot is this thread's until `decoded`
        std::lock_guard<std::mutex> lock(mu_);
        s->decoded = true;
        cv_.notify_all();
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      fail_all(e.what());
    }
  }

  // A row that cannot be decoded: an error naming the file, or with data.skip_bad_images
  // skipped (training: the batch's previous good image takes its place, so shapes stay static).
  void bad_row(Slot& s, int64_t row, const std::string& why) {
    if (!data_.files->skip_bad) fail(why);
    s.bad[row] = 1;
    std::lock_guard<std::mutex> lock(mu_);
    ++skipped_;
  }

  void decode(int64_t b, Slot& s) {
    const ImageFiles& f = *data_.files;
    const int n = static_cast<int>(rows(b)), S = f.size;
    const bool training = opt_.augment != nullptr;
    std::vector<kernels::ResizeJob> jobs(n);
    std::vector<size_t> offset(n + 1, 0);
    std::vector<int> good;  // rows with a decodable header
    for (int r = 0; r < n; ++r) {
      const int64_t index = order_[b * batch_ + r];
      if (!s.errors[r].empty()) {
        bad_row(s, r, s.errors[r]);
        offset[r + 1] = offset[r];
        continue;
      }
      int comps = 0, widths[NVJPEG_MAX_COMPONENT], heights[NVJPEG_MAX_COMPONENT];
      nvjpegChromaSubsampling_t sub;
      if (nvjpegGetImageInfo(dec_->sw_handle, s.bytes[r].data(), s.bytes[r].size(), &comps, &sub, widths, heights) !=
          NVJPEG_STATUS_SUCCESS) {
        bad_row(s, r, f.paths[index] + ": unreadable JPEG");
        offset[r + 1] = offset[r];
        continue;
      }
      const int h = heights[0], w = widths[0];
      if (static_cast<int64_t>(h) * w > kMaxImagePixels) {  // as decode_image_file: refused before allocating
        bad_row(s, r, f.paths[index] + ": image of " + std::to_string(w) + " x " + std::to_string(h) +
                          " pixels, over vitlab's limit of 2^26 (8192 x 8192)");
        offset[r + 1] = offset[r];
        continue;
      }
      kernels::ResizeJob& j = jobs[r];
      j.pitch = w * 3;
      if (training && opt_.augment->rrc) {
        std::mt19937_64 rng(mix_seed(mix_seed(opt_.seed, kSeedImage, opt_.epoch), 0, index));
        const CropBox box = random_resized_crop_box(h, w, opt_.augment->scale, opt_.augment->ratio, rng);
        j.y0 = box.top, j.x0 = box.left, j.h = box.height, j.w = box.width, j.rh = S, j.rw = S, j.top = 0, j.left = 0;
      } else {
        const EvalGeometry g = eval_geometry(h, w, S, f.crop_pct, f.crop_mode);
        j.y0 = 0, j.x0 = 0, j.h = h, j.w = w, j.rh = g.resize_h, j.rw = g.resize_w, j.top = g.crop.top, j.left = g.crop.left;
      }
      s.labels[r] = labels_[index];
      offset[r + 1] = offset[r] + static_cast<size_t>(h) * w * 3;
      good.push_back(r);
    }
    const auto cuda_u8 = torch::TensorOptions().dtype(torch::kUInt8).device(opt_.device);
    auto decoded = torch::empty({static_cast<int64_t>(std::max<size_t>(offset[n], 1))}, cuda_u8);
    uint8_t* base = decoded.data_ptr<uint8_t>();
    std::vector<const unsigned char*> data;
    std::vector<size_t> lengths;
    std::vector<nvjpegImage_t> outs;
    for (int r : good) {
      data.push_back(s.bytes[r].data());
      lengths.push_back(s.bytes[r].size());
      nvjpegImage_t img{};
      img.channel[0] = base + offset[r];
      img.pitch[0] = static_cast<size_t>(jobs[r].pitch);
      outs.push_back(img);
      jobs[r].src = base + offset[r];
    }
    const cudaStream_t stream = stream_.stream();
    bool batched = false;
    if (!good.empty()) {
      if (static_cast<int>(good.size()) != dec_->batched_size) {
        dec_->batched_size = static_cast<int>(good.size());
        check_nvjpeg(nvjpegDecodeBatchedInitialize(dec_->hw_handle, dec_->hw_state, dec_->batched_size, 1,
                                                   NVJPEG_OUTPUT_RGBI),
                     "nvjpegDecodeBatchedInitialize");
      }
      // The hardware decoder writes its output when it is called, not in the stream's order
      // (reproduced upstream on H100s with nvJPEG 12.3 to 13.2: torchcodec PR 1634, torchvision
      // PR 9606), and `decoded` may be memory the caching allocator took back from an earlier
      // batch whose resize kernel, queued on this stream, still reads it: wait on the host.
      check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      batched = nvjpegDecodeBatched(dec_->hw_handle, dec_->hw_state, data.data(), lengths.data(), outs.data(),
                                    stream) == NVJPEG_STATUS_SUCCESS;
    }
    if (!batched)  // one by one on the hybrid decoder, which names the image it cannot decode
      for (size_t k = 0; k < good.size(); ++k) {
        const int r = good[k];
        if (nvjpegDecode(dec_->sw_handle, dec_->sw_state, data[k], lengths[k], NVJPEG_OUTPUT_RGBI, &outs[k], stream) !=
            NVJPEG_STATUS_SUCCESS)
          bad_row(s, r, f.paths[order_[b * batch_ + r]] + ": nvJPEG cannot decode this JPEG");
      }
    // Training keeps the batch's shape: a bad row takes the previous good row's image and label.
    int fill = -1;
    for (int r = 0; r < n && training; ++r) {
      if (!s.bad[r]) {
        fill = r;
        continue;
      }
      const int from = fill >= 0 ? fill : [&] { int k = r; while (k < n && s.bad[k]) ++k; return k; }();
      if (from >= n) fail("nvJPEG loader: no image of a batch could be decoded (", f.paths[order_[b * batch_ + r]], ")");
      jobs[r] = jobs[from];
      s.labels[r] = s.labels[from];
      s.bad[r] = 0;
    }
    for (int r = 0; r < n; ++r)
      if (s.bad[r]) jobs[r] = jobs[good.empty() ? 0 : good[0]], s.labels[r] = -1;  // evaluation drops these rows
    auto jobs_host = torch::empty({static_cast<int64_t>(n * sizeof(kernels::ResizeJob))},
                                  torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
    std::memcpy(jobs_host.data_ptr<uint8_t>(), jobs.data(), n * sizeof(kernels::ResizeJob));
    auto jobs_dev = jobs_host.to(opt_.device, /*non_blocking=*/true);
    s.images = torch::empty({n, f.channels, S, S}, cuda_u8);  // (b, C, S, S)
    if (!good.empty())
      kernels::resize_batch(reinterpret_cast<const kernels::ResizeJob*>(jobs_dev.data_ptr<uint8_t>()), n, S, f.channels,
                            (training && opt_.augment->rrc ? opt_.augment->interpolation : f.interpolation) == "bicubic",
                            s.images.data_ptr<uint8_t>(), stream);
    check_cuda(cudaGetLastError(), "resize kernel launch");
    check_cuda(cudaEventRecord(s.event, stream), "cudaEventRecord");
    // The decoded pixels and the job list stay allocated until the kernel has read them: the
    // caching allocator reuses their memory only for later work on this same stream, which
    // runs after the kernel (except the hardware decoder's writes: see above).
  }

  const Dataset data_;
  LoaderOptions opt_;
  int depth_;
  std::vector<Slot> slots_;
  int64_t consumed_ = 0, next_job_ = 0, skipped_ = 0;
  bool stop_ = false;
  std::string error_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  std::unique_ptr<Decoders> dec_;
  c10::cuda::CUDAStream stream_ = c10::cuda::getDefaultCUDAStream();
};

}  // namespace

bool nvjpeg_available() { return true; }

std::unique_ptr<Loader> make_nvjpeg_loader(const Dataset& data, const torch::Tensor& order, int64_t batch,
                                           bool drop_last, const LoaderOptions& options) {
  return std::make_unique<NvjpegLoader>(data, order, batch, drop_last, options);
}

}  // namespace vitlab

#else

namespace vitlab {

bool nvjpeg_available() { return false; }

std::unique_ptr<Loader> make_nvjpeg_loader(const Dataset&, const torch::Tensor&, int64_t, bool, const LoaderOptions&) {
  return nullptr;
}

}  // namespace vitlab

#endif
