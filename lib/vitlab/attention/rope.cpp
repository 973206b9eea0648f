#include "vitlab/attention/rope.h"

#include "vitlab/error.h"

namespace vitlab {

Rope2d::Rope2d(int64_t grid_h, int64_t grid_w, int64_t prefix, double theta)
    : grid_h_(grid_h), grid_w_(grid_w), prefix_(prefix), theta_(theta) {}

const Rope2d::Tables& Rope2d::tables(int64_t e, const torch::TensorOptions& opts) const {
  const auto key = std::make_tuple(e, static_cast<int>(c10::typeMetaToScalarType(opts.dtype())), opts.device().str());
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  const int64_t f = e / 4;  // frequencies per axis
  auto freq = torch::pow(theta_, -torch::arange(f, torch::kDouble) / f);             // (f)
  auto idx = torch::arange(grid_h_ * grid_w_, torch::kLong);
  auto row = torch::floor_divide(idx, grid_w_).to(torch::kDouble), col = (idx % grid_w_).to(torch::kDouble);
  auto ang_r = torch::outer(row, freq), ang_c = torch::outer(col, freq);             // (P, f) each
  // Channel layout per token: [row: x1 (f), x2 (f) | col: x1 (f), x2 (f)]; each (x1, x2) pair
  // turns by its angle: x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.
  auto cos = torch::cat({ang_r.cos(), ang_r.cos(), ang_c.cos(), ang_c.cos()}, 1);    // (P, e)
  auto sin = torch::cat({-ang_r.sin(), ang_r.sin(), -ang_c.sin(), ang_c.sin()}, 1);  // (P, e)
  cos = torch::cat({torch::ones({prefix_, e}, torch::kDouble), cos}, 0);              // (N, e)
  sin = torch::cat({torch::zeros({prefix_, e}, torch::kDouble), sin}, 0);             // (N, e)
  return cache_.emplace(key, Tables{cos.to(opts), sin.to(opts)}).first->second;
}

torch::Tensor Rope2d::rotate(const torch::Tensor& t) const {
  const int64_t N = t.size(-2), e = t.size(-1);
  if (N != tokens()) fail("rope: ", N, " tokens, but the grid has ", tokens());
  if (e % 4 != 0) fail("rope: width ", e, " is not divisible by 4 (two axes of channel pairs)");
  const auto& tb = tables(e, t.options());
  // Swap x1 and x2 within each axis: (..., N, 2 axes, 2 halves, f) flipped on the halves.
  std::vector<int64_t> split(t.sizes().begin(), t.sizes().end() - 1);
  split.insert(split.end(), {2, 2, e / 4});
  auto swapped = t.reshape(split).flip(-2).reshape(t.sizes());  // (..., N, e)
  return t * tb.cos + swapped * tb.sin;
}

}  // namespace vitlab
