#pragma once
// Batches from a device-resident dataset: one shuffled permutation per epoch, sliced into
// fixed-size batches (the last partial batch is dropped in training so shapes stay static).
#include <torch/torch.h>

#include "vitlab/data/dataset.h"

namespace vitlab {

Dataset to_device(const Dataset& d, const torch::Device& device);

class EpochLoader {
 public:
  // `order` is a permutation of [0, data.size()) (or arange for evaluation).
  EpochLoader(const Dataset& data, torch::Tensor order, int64_t batch, bool drop_last);
  int64_t steps() const { return steps_; }
  Dataset batch(int64_t step) const;  // images (b, C, H, W) uint8 and labels (b)

 private:
  const Dataset& data_;
  torch::Tensor order_;
  int64_t batch_, steps_;
};

}  // namespace vitlab
