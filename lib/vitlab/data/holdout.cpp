#include "vitlab/data/holdout.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "vitlab/error.h"

namespace vitlab {

HoldOut stratified_holdout(const torch::Tensor& labels, double val_size, uint64_t seed) {
  auto lab = labels.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = lab.numel();
  const int64_t* y = lab.data_ptr<int64_t>();
  const int64_t total = val_size >= 1 ? static_cast<int64_t>(val_size) : std::llround(val_size * n);
  if (total >= n)
    fail("data.val_size: ", val_size, " holds out ", total, " of the ", n, " training images and leaves none to train on",
         val_size >= 1 ? " (a fraction such as 0.1 holds out that share of any data)" : "");

  // Members of each class, in split order.
  const int64_t classes = n ? *std::max_element(y, y + n) + 1 : 0;
  std::vector<std::vector<int64_t>> members(classes);
  for (int64_t i = 0; i < n; ++i) members[y[i]].push_back(i);

  // Each class's share of `total`: floor(total * n_c / n), then one more for the largest
  // remainders (Hamilton's method), so the shares add up to `total` exactly.
  std::vector<int64_t> share(classes);
  std::vector<std::pair<double, int64_t>> remainder;  // (-fraction, class): sorts largest first
  int64_t given = 0;
  for (int64_t c = 0; c < classes; ++c) {
    const double exact = static_cast<double>(total) * members[c].size() / n;
    share[c] = static_cast<int64_t>(std::floor(exact));
    given += share[c];
    remainder.emplace_back(-(exact - share[c]), c);
  }
  std::sort(remainder.begin(), remainder.end());
  for (int64_t k = 0; given < total; ++k, ++given) ++share[remainder[k].second];

  std::vector<char> held(n, 0);
  for (int64_t c = 0; c < classes; ++c) {
    if (share[c] == 0) continue;
    if (share[c] >= static_cast<int64_t>(members[c].size()))
      fail("data.val_size: ", val_size, " would hold out all ", members[c].size(), " training images of class ", c);
    // A Fisher-Yates prefix drawn from mt19937_64 (fully specified by the standard, unlike the
    // library's distributions), so the split is the same on every platform.
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(c) + 1);
    auto& m = members[c];
    for (int64_t k = 0; k < share[c]; ++k) {
      const uint64_t span = m.size() - k;
      std::swap(m[k], m[k + static_cast<int64_t>(rng() % span)]);
      held[m[k]] = 1;
    }
  }
  std::vector<int64_t> train_idx, val_idx;
  train_idx.reserve(n - total);
  val_idx.reserve(total);
  for (int64_t i = 0; i < n; ++i) (held[i] ? val_idx : train_idx).push_back(i);
  return {torch::tensor(train_idx, torch::kLong), torch::tensor(val_idx, torch::kLong)};
}

}  // namespace vitlab
