#pragma once
// Batches of one epoch, in the order given: from memory (index_select on the data's device) or
// streamed from image files by decode workers (data/stream.h). Either way a batch is uint8
// images (b, C, H, W) and int64 labels (b) on the training device.
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vitlab/data/dataset.h"

namespace vitlab {

Dataset to_device(const Dataset& d, const torch::Device& device);  // streamed data stays as it is

// A streamed batch's labels on `device`, without the rows marked -1 (evaluation images that could
// not be decoded), copied asynchronously (data/async_copy.h).
torch::Tensor device_labels(const std::vector<int64_t>& labels, const torch::Device& device);

// What a streamed epoch needs besides the data: where batches go, and for training the
// per-image augmentation with the (seed, epoch) that, with each image's index, seeds it.
struct LoaderOptions {
  torch::Device device = torch::kCPU;
  const AugmentConfig* augment = nullptr;  // training; null: the evaluation transform
  uint64_t seed = 0;
  int64_t epoch = 0;
};

// The bookkeeping of a streamed epoch, shared by the loaders that decode files: the order of the
// images, every image's label (on the host), and the steps it makes in batches of `batch_` (the
// last partial batch dropped with drop_last), `total_` images in all.
class EpochPlan {
 protected:
  EpochPlan(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last);
  int64_t rows(int64_t b) const { return std::min(batch_, total_ - b * batch_); }  // images in batch b

  std::vector<int64_t> order_, labels_;
  int64_t batch_, steps_, total_;
};

// Where a streamed loader's threads spend their time: seconds in each named phase ("thread
// kind.phase"), summed over the threads that run it, since the loader started. vit_bench --data
// reports them a step, to show what a folder-fed step waits for.
using PhaseSeconds = std::vector<std::pair<std::string, double>>;

class PhaseClock {
 public:
  explicit PhaseClock(std::vector<std::string> names) : names_(std::move(names)), ns_(names_.size()) {}
  // Adds the time since `t` to phase `i` and restarts `t` (from any thread).
  void lap(size_t i, std::chrono::steady_clock::time_point& t) {
    const auto now = std::chrono::steady_clock::now();
    ns_[i] += std::chrono::duration_cast<std::chrono::nanoseconds>(now - t).count();
    t = now;
  }
  PhaseSeconds seconds() const {
    PhaseSeconds out;
    for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], ns_[i].load() * 1e-9);
    return out;
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::atomic<int64_t>> ns_;  // value-initialised: zero
};

// acc += sign * p, phase by phase (matched by name; a new name goes at the end).
void add_phases(PhaseSeconds& acc, const PhaseSeconds& p, double sign = 1);

class Loader {
 public:
  virtual ~Loader() = default;
  virtual int64_t steps() const = 0;
  // Batch `step`; a streamed loader takes the steps in order, 0 first.
  virtual Dataset batch(int64_t step) = 0;
  // Images skipped so far because they could not be decoded (data.skip_bad_images).
  virtual int64_t skipped() const { return 0; }
  // Its threads' time by phase (streamed loaders; empty for batches from memory).
  virtual PhaseSeconds phases() const { return {}; }
};

// A training epoch's order: a permutation of [0, n) drawn from (seed, epoch) through LibTorch's
// global generator, so a resumed run and vit_bench --data draw what the trainer draws.
torch::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch);

// `order` is a permutation of [0, data.size()) (or arange for evaluation); drop_last drops the
// last partial batch (training keeps shapes static).
std::unique_ptr<Loader> make_loader(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last,
                                    const LoaderOptions& options = {});

// Every image of `data` through the evaluation transform, in order, as an in-memory dataset on
// the CPU (tests, and small folders evaluated whole).
Dataset decode_all(const Dataset& data);

}  // namespace vitlab
