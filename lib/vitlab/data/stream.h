#pragma once
// The streamed loader of image folders. Worker threads (data.workers) each take the next image
// of the epoch, decode it (OpenCV; a JPEG at 1/2-1/8 scale where its training crop allows,
// data.reduced_decode), transform it (data/transform.h: timm's RandomResizedCrop in
// training, the evaluation resize and centre crop otherwise) and write it into its batch's
// buffer, a few batches ahead of the training step; buffers are pinned on CUDA and copied
// asynchronously. Each image's randomness comes from (seed, epoch, index), so the batches do
// not depend on which worker decoded what, and a resumed run sees the same pixels.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "vitlab/data/loader.h"

namespace vitlab {

class StreamLoader : public Loader, private EpochPlan {
 public:
  StreamLoader(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last,
               const LoaderOptions& options);
  ~StreamLoader() override;
  int64_t steps() const override { return steps_; }
  Dataset batch(int64_t step) override;
  int64_t skipped() const override;
  PhaseSeconds phases() const override { return clock_.seconds(); }

 private:
  struct Slot {
    torch::Tensor images;  // (b, C, S, S) uint8, pinned on CUDA
    std::vector<int64_t> labels;
    std::vector<char> bad;  // evaluation: images that could not be decoded (dropped)
    int64_t done = 0;       // images written
  };
  void work();
  bool decode_transformed(int64_t index, uint8_t* out, std::string& error);

  const Dataset data_;
  LoaderOptions opt_;
  int depth_;
  std::vector<Slot> slots_;
  int64_t consumed_ = 0, next_job_ = 0, skipped_ = 0;
  bool stop_ = false;
  std::string error_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> workers_;
  enum Phase { kWaitForSlot, kDecode, kTransform };
  PhaseClock clock_{{"workers.wait_for_slot", "workers.decode", "workers.transform"}};
};

}  // namespace vitlab
