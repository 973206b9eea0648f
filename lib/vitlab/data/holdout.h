#pragma once
// The validation hold-out: a seeded, stratified random subset of the training split, the same
// on every loader (it sees only the labels). Never "the last N": an image folder's listing is
// sorted by class, so the last N would be whole classes.
#include <torch/torch.h>

#include <cstdint>

namespace vitlab {

struct HoldOut {
  torch::Tensor train, val;  // (N - n_val) and (n_val) int64 indices into the split, ascending
};

// `val_size`: >= 1 a count, in (0, 1) a fraction of the split (rounded to the nearest image).
// Each class gives its share of the count (largest remainders, ties to the lower class index),
// its members drawn by a permutation seeded from (seed, class). Fails, naming data.val_size,
// when the hold-out would take every training image or all the images of one class.
HoldOut stratified_holdout(const torch::Tensor& labels, double val_size, uint64_t seed);

}  // namespace vitlab
