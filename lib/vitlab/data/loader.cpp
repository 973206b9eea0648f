#include "vitlab/data/loader.h"

#include "vitlab/data/async_copy.h"
#include "vitlab/data/nvjpeg_loader.h"
#include "vitlab/data/stream.h"
#include "vitlab/seed.h"

namespace vitlab {
namespace {

// Batches of a device-resident dataset: slices of one permutation per epoch.
class MemoryLoader : public Loader {
 public:
  MemoryLoader(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last)
      : data_(data), order_(order.to(data.images.device())), batch_(batch) {
    const int64_t n = order_.size(0);
    steps_ = drop_last ? n / batch : (n + batch - 1) / batch;
  }
  int64_t steps() const override { return steps_; }
  Dataset batch(int64_t step) override {
    auto idx = order_.slice(0, step * batch_, (step + 1) * batch_);
    return {data_.images.index_select(0, idx), data_.labels.index_select(0, idx), nullptr};
  }

 private:
  const Dataset& data_;
  torch::Tensor order_;
  int64_t batch_, steps_;
};

}  // namespace

void add_phases(PhaseSeconds& acc, const PhaseSeconds& p, double sign) {
  for (const auto& [name, seconds] : p) {
    auto it = std::find_if(acc.begin(), acc.end(), [&](const auto& a) { return a.first == name; });
    if (it == acc.end()) it = acc.insert(acc.end(), {name, 0.0});
    it->second += sign * seconds;
  }
}

EpochPlan::EpochPlan(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last) : batch_(batch) {
  auto o = order.to(torch::kCPU, torch::kLong).contiguous();
  order_.assign(o.data_ptr<int64_t>(), o.data_ptr<int64_t>() + o.numel());
  auto l = data.labels.to(torch::kCPU, torch::kLong).contiguous();
  labels_.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
  const int64_t n = static_cast<int64_t>(order_.size());
  steps_ = drop_last ? n / batch : (n + batch - 1) / batch;
  total_ = std::min(n, steps_ * batch);
}

torch::Tensor device_labels(const std::vector<int64_t>& labels, const torch::Device& device) {
  std::vector<int64_t> kept;
  for (int64_t l : labels)
    if (l >= 0) kept.push_back(l);
  return to_device_async(torch::tensor(kept, torch::kLong), device);
}

Dataset to_device(const Dataset& d, const torch::Device& device) {
  if (d.size() == 0 || d.streamed()) return d;  // an absent split (data.val_size 0) stays absent
  return {d.images.to(device), d.labels.to(device), nullptr};
}

torch::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  torch::manual_seed(mix_seed(seed, kSeedShuffle, epoch));
  return torch::randperm(n, torch::kLong);
}

std::unique_ptr<Loader> make_loader(const Dataset& data, const torch::Tensor& order, int64_t batch, bool drop_last,
                                    const LoaderOptions& options) {
  if (data.streamed() && options.device.is_cuda() && data.files->decode == "auto")
    if (auto gpu = make_nvjpeg_loader(data, order, batch, drop_last, options)) return gpu;
  if (data.streamed()) return std::make_unique<StreamLoader>(data, order, batch, drop_last, options);
  return std::make_unique<MemoryLoader>(data, order, batch, drop_last);
}

Dataset decode_all(const Dataset& data) {
  if (!data.streamed()) return data;
  auto loader = make_loader(data, torch::arange(data.size(), torch::kLong), 256, /*drop_last=*/false);
  std::vector<torch::Tensor> images, labels;
  for (int64_t s = 0; s < loader->steps(); ++s) {
    Dataset b = loader->batch(s);
    images.push_back(b.images);
    labels.push_back(b.labels);
  }
  return {torch::cat(images), torch::cat(labels), nullptr};
}

}  // namespace vitlab
