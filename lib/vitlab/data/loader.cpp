#include "vitlab/data/loader.h"

namespace vitlab {

Dataset to_device(const Dataset& d, const torch::Device& device) {
  if (d.size() == 0) return d;  // an absent split (e.g. data.val_size = 0) stays absent
  return {d.images.to(device), d.labels.to(device)};
}

EpochLoader::EpochLoader(const Dataset& data, torch::Tensor order, int64_t batch, bool drop_last)
    : data_(data), order_(order.to(data.images.device())), batch_(batch) {
  const int64_t n = order_.size(0);
  steps_ = drop_last ? n / batch : (n + batch - 1) / batch;
}

Dataset EpochLoader::batch(int64_t step) const {
  auto idx = order_.slice(0, step * batch_, (step + 1) * batch_);
  return {data_.images.index_select(0, idx), data_.labels.index_select(0, idx)};
}

}  // namespace vitlab
