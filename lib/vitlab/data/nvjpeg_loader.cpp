#include "vitlab/data/nvjpeg_loader.h"

#ifdef VITLAB_WITH_NVJPEG

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fcntl.h>
#include <nvjpeg.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
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

// The loader's phases (Loader::phases): its reader threads, its decode thread and, with
// data.hw_decoder_load < 1, the hybrid decoder's threads.
enum Phase {
  kRead, kWaitForSlot, kWaitForFiles, kHeaders, kWaitForStream, kHardwareCall, kWaitForHybrid, kResize,
  kHybridHost, kHybridWaitForStream, kHybridDevice
};
const std::vector<std::string> kPhaseNames = {
    "readers.read", "decode.wait_for_slot", "decode.wait_for_files", "decode.headers", "decode.wait_for_stream",
    "decode.hardware_call", "decode.wait_for_hybrid", "decode.resize", "hybrid.host", "hybrid.wait_for_stream",
    "hybrid.device"};

// nvJPEG's hybrid decoder through its decoupled API, for one host thread: the Huffman stage
// (nvjpegDecodeJpegHost) runs on that thread, the transfer and the device stage on the stream it
// is given. Two pinned buffers and bitstreams, so the host stage of an image overlaps the
// transfer of the one before (the pattern of NVIDIA's samples).
struct HybridDecoder {
  nvjpegJpegDecoder_t decoder = nullptr;
  nvjpegJpegState_t state = nullptr;
  nvjpegBufferPinned_t pinned[2] = {nullptr, nullptr};
  nvjpegJpegStream_t bitstream[2] = {nullptr, nullptr};
  nvjpegBufferDevice_t device = nullptr;
  nvjpegDecodeParams_t params = nullptr;
  int next = 0;  // the pinned buffer and bitstream the next image takes

  explicit HybridDecoder(nvjpegHandle_t h) {
    check_nvjpeg(nvjpegDecoderCreate(h, NVJPEG_BACKEND_HYBRID, &decoder), "nvjpegDecoderCreate");
    check_nvjpeg(nvjpegDecoderStateCreate(h, decoder, &state), "nvjpegDecoderStateCreate");
    for (int i = 0; i < 2; ++i) {
      check_nvjpeg(nvjpegBufferPinnedCreate(h, nullptr, &pinned[i]), "nvjpegBufferPinnedCreate");
      check_nvjpeg(nvjpegJpegStreamCreate(h, &bitstream[i]), "nvjpegJpegStreamCreate");
    }
    check_nvjpeg(nvjpegBufferDeviceCreate(h, nullptr, &device), "nvjpegBufferDeviceCreate");
    check_nvjpeg(nvjpegStateAttachDeviceBuffer(state, device), "nvjpegStateAttachDeviceBuffer");
    check_nvjpeg(nvjpegDecodeParamsCreate(h, &params), "nvjpegDecodeParamsCreate");
    check_nvjpeg(nvjpegDecodeParamsSetOutputFormat(params, NVJPEG_OUTPUT_RGBI), "nvjpegDecodeParamsSetOutputFormat");
  }

  // One JPEG into `out` (RGB interleaved) on `stream`; false when nvJPEG cannot decode it.
  bool decode(nvjpegHandle_t h, const unsigned char* data, size_t length, nvjpegImage_t* out, cudaStream_t stream,
              PhaseClock& clock) {
    const int b = next;
    next ^= 1;
    auto t = std::chrono::steady_clock::now();
    if (nvjpegJpegStreamParse(h, data, length, 0, 0, bitstream[b]) != NVJPEG_STATUS_SUCCESS) return false;
    check_nvjpeg(nvjpegStateAttachPinnedBuffer(state, pinned[b]), "nvjpegStateAttachPinnedBuffer");
    const bool host = nvjpegDecodeJpegHost(h, decoder, state, params, bitstream[b]) == NVJPEG_STATUS_SUCCESS;
    clock.lap(kHybridHost, t);
    if (!host) return false;
    // Waiting here lets this host stage overlap the previous image's transfer and device stage,
    // and the next image's host stage writes the other pinned buffer only after the transfer
    // that read it has finished.
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    clock.lap(kHybridWaitForStream, t);
    const bool ok = nvjpegDecodeJpegTransferToDevice(h, decoder, state, bitstream[b], stream) == NVJPEG_STATUS_SUCCESS &&
                    nvjpegDecodeJpegDevice(h, decoder, state, out, stream) == NVJPEG_STATUS_SUCCESS;
    clock.lap(kHybridDevice, t);
    return ok;
  }
};

// nvJPEG's handles and decode states, made once per process and lent to one loader at a time:
// creating the hardware decoder's handle takes long enough to show in every epoch's start, and
// the hybrid decoders' pinned buffers grow to their size over the first images.
struct Decoders {
  nvjpegHandle_t hw_handle = nullptr, sw_handle = nullptr;
  nvjpegJpegState_t hw_state = nullptr, sw_state = nullptr;
  int batched_size = 0;  // what nvjpegDecodeBatchedInitialize was last told
  std::vector<std::unique_ptr<HybridDecoder>> hybrid;  // one per hybrid thread, made when first needed
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
    const int workers = data_.files->workers > 0 ? data_.files->workers : cores;
    if (data_.files->hw_decoder_load < 1 && total_ > 0) {
      // The hybrid decoder's threads, each with its decoder and a stream of the device's pool
      // (made before any thread starts: a failure here must not leave threads running).
      const int n = std::max(1, workers - 1);  // the decode thread takes the last core
      while (static_cast<int>(dec_->hybrid.size()) < n)
        dec_->hybrid.push_back(std::make_unique<HybridDecoder>(dec_->sw_handle));
      for (int k = 0; k < n; ++k) {
        hybrid_streams_.push_back(c10::cuda::getStreamFromPool(false, opt_.device.index()));
        hybrid_done_.emplace_back();
        check_cuda(cudaEventCreateWithFlags(&hybrid_done_.back(), cudaEventDisableTiming), "cudaEventCreate");
      }
    }
    const int readers = std::max(1, std::min(workers, 8));
    for (int w = 0; w < readers && total_ > 0; ++w) threads_.emplace_back([this] { read_loop(); });
    for (int k = 0; k < static_cast<int>(hybrid_streams_.size()); ++k)
      threads_.emplace_back([this, k] { hybrid_loop(k); });
    if (total_ > 0) threads_.emplace_back([this] { decode_loop(); });
  }

  ~NvjpegLoader() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    {
      std::lock_guard<std::mutex> lock(hybrid_mu_);
      hybrid_stop_ = true;
    }
    hybrid_cv_.notify_all();
    for (auto& t : threads_) t.join();
    cudaStreamSynchronize(stream_.stream());
    for (auto& s : hybrid_streams_) cudaStreamSynchronize(s.stream());
    for (auto& s : slots_) cudaEventDestroy(s.event);
    for (auto e : hybrid_done_) cudaEventDestroy(e);
    return_decoders(std::move(dec_));
  }

  int64_t steps() const override { return steps_; }
  int64_t skipped() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return skipped_;
  }
  PhaseSeconds phases() const override { return clock_.seconds(); }

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
        auto t = std::chrono::steady_clock::now();
        read_file(data_.files->paths[order_[job]], buf, error);
        clock_.lap(kRead, t);
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
        auto t = std::chrono::steady_clock::now();
        {
          std::unique_lock<std::mutex> lock(mu_);
          s = &slots_[b % depth_];
          cv_.wait(lock, [&] { return stop_ || b < consumed_ + depth_; });  // the slot is free...
          clock_.lap(kWaitForSlot, t);
          cv_.wait(lock, [&] { return stop_ || (s->read == rows(b) && !s->decoded); });  // ...and its files read
          clock_.lap(kWaitForFiles, t);
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

  // A hybrid-decoder thread: decodes rows of the posted batch until none is left, then marks
  // the end of its work on its stream (hybrid_done_), which the batch's resize waits for.
  void hybrid_loop(int k) {
    c10::cuda::CUDAGuard device(opt_.device);
    HybridDecoder& h = *dec_->hybrid[k];
    const cudaStream_t stream = hybrid_streams_[k].stream();
    int64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(hybrid_mu_);
        hybrid_cv_.wait(lock, [&] { return hybrid_stop_ || hybrid_job_.generation != seen; });
        if (hybrid_job_.generation == seen) return;  // stopped with nothing posted
        seen = hybrid_job_.generation;
      }
      HybridJob& j = hybrid_job_;  // fixed until every thread has reported
      std::string error;
      try {
        for (int i; (i = j.next++) < j.count;)
          if (!h.decode(dec_->sw_handle, j.data[i], j.lengths[i], &j.outs[i], stream, clock_)) j.failed[i] = 1;
        check_cuda(cudaEventRecord(hybrid_done_[k], stream), "cudaEventRecord");
      } catch (const std::exception& e) {
        error = e.what();
      }
      {
        std::lock_guard<std::mutex> lock(hybrid_mu_);
        if (!error.empty() && j.error.empty()) j.error = error;
        ++j.finished;
      }
      hybrid_cv_.notify_all();
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
    auto t = std::chrono::steady_clock::now();
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
    // The first n_hw good rows go to the hardware decoder in one batched call, the others to the
    // hybrid decoder's threads (data.hw_decoder_load), both at once.
    const int n_good = static_cast<int>(good.size());
    const int n_hw = hybrid_streams_.empty() ? n_good : static_cast<int>(std::lround(f.hw_decoder_load * n_good));
    // The hardware decoder writes its output when it is called, not in the stream's order
    // (reproduced upstream on H100s with nvJPEG 12.3 to 13.2: torchcodec PR 1634, torchvision PR
    // 9606), the hybrid threads on streams of their own, and `decoded` may be memory the caching
    // allocator took back from an earlier batch whose resize kernel, queued on this stream, still
    // reads it: wait on the host.
    clock_.lap(kHeaders, t);
    if (n_good > 0) check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    clock_.lap(kWaitForStream, t);
    if (n_hw < n_good) {
      {
        std::lock_guard<std::mutex> lock(hybrid_mu_);
        HybridJob& j = hybrid_job_;
        j.data = data.data() + n_hw, j.lengths = lengths.data() + n_hw, j.outs = outs.data() + n_hw;
        j.count = n_good - n_hw, j.next = 0, j.finished = 0, j.failed.assign(j.count, 0), j.error.clear();
        ++j.generation;
      }
      hybrid_cv_.notify_all();
    }
    // Nothing below throws before the hybrid threads are done with this batch's buffers.
    std::string hw_error;
    std::vector<int> undecoded;  // indices into `good` that nvJPEG could not decode
    bool batched = false;
    if (n_hw > 0) {
      if (n_hw != dec_->batched_size) {
        const nvjpegStatus_t st =
            nvjpegDecodeBatchedInitialize(dec_->hw_handle, dec_->hw_state, n_hw, 1, NVJPEG_OUTPUT_RGBI);
        dec_->batched_size = st == NVJPEG_STATUS_SUCCESS ? n_hw : 0;
        if (st != NVJPEG_STATUS_SUCCESS)
          hw_error = "nvJPEG loader: nvjpegDecodeBatchedInitialize failed (nvjpegStatus " +
                     std::to_string(static_cast<int>(st)) + ")";
      }
      batched = hw_error.empty() && nvjpegDecodeBatched(dec_->hw_handle, dec_->hw_state, data.data(), lengths.data(),
                                                        outs.data(), stream) == NVJPEG_STATUS_SUCCESS;
    }
    if (!batched && hw_error.empty())  // one by one on the hybrid decoder, which names the image it cannot decode
      for (int k = 0; k < n_hw; ++k)
        if (nvjpegDecode(dec_->sw_handle, dec_->sw_state, data[k], lengths[k], NVJPEG_OUTPUT_RGBI, &outs[k], stream) !=
            NVJPEG_STATUS_SUCCESS)
          undecoded.push_back(k);
    clock_.lap(kHardwareCall, t);
    if (n_hw < n_good) {
      std::vector<char> failed;
      std::string error;
      {
        std::unique_lock<std::mutex> lock(hybrid_mu_);
        hybrid_cv_.wait(lock, [&] { return hybrid_job_.finished == static_cast<int>(hybrid_streams_.size()); });
        failed = hybrid_job_.failed;
        error = hybrid_job_.error;
      }
      if (!error.empty()) fail("nvJPEG loader: ", error);
      for (int k = n_hw; k < n_good; ++k)
        if (failed[k - n_hw]) undecoded.push_back(k);
      for (cudaEvent_t e : hybrid_done_) check_cuda(cudaStreamWaitEvent(stream, e, 0), "cudaStreamWaitEvent");
    }
    clock_.lap(kWaitForHybrid, t);
    if (!hw_error.empty()) fail(hw_error);
    for (int k : undecoded)
      bad_row(s, good[k], f.paths[order_[b * batch_ + good[k]]] + ": nvJPEG cannot decode this JPEG");
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
    clock_.lap(kResize, t);
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
  PhaseClock clock_{kPhaseNames};
  c10::cuda::CUDAStream stream_ = c10::cuda::getDefaultCUDAStream();

  // The batch's rows for the hybrid threads, posted by the decode thread under hybrid_mu_.
  struct HybridJob {
    int64_t generation = 0;  // one more for each batch posted
    const unsigned char* const* data = nullptr;
    const size_t* lengths = nullptr;
    nvjpegImage_t* outs = nullptr;
    int count = 0;
    std::atomic<int> next{0};  // the next row to take
    int finished = 0;          // threads done with this batch
    std::vector<char> failed;  // per row: nvJPEG could not decode it
    std::string error;         // a CUDA failure, which stops the loader
  };
  std::vector<c10::cuda::CUDAStream> hybrid_streams_;
  std::vector<cudaEvent_t> hybrid_done_;
  std::mutex hybrid_mu_;
  std::condition_variable hybrid_cv_;
  HybridJob hybrid_job_;
  bool hybrid_stop_ = false;
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
