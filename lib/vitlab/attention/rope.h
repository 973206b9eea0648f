#pragma once
// 2-D axial rotary position embedding (Su et al. 2021, RoFormer; axial for images as in Heo et
// al. 2024, "Rotary Position Embedding for Vision Transformer"). A width-e vector is rotated in
// e/2 planes: the first e/2 channels by the patch's row, the last e/2 by its column, at
// frequencies theta^(-j / (e/4)), j < e/4. Since R(p)^T R(p') = R(p' - p), a score q . k between
// rotated vectors depends on the positions only through the 2-D offset p' - p. Prefix (class)
// tokens are not rotated.
#include <torch/torch.h>

#include <map>
#include <tuple>

namespace vitlab {

class Rope2d {
 public:
  Rope2d(int64_t grid_h, int64_t grid_w, int64_t prefix, double theta);
  // t (..., N, e) with N = prefix + grid_h * grid_w and e divisible by 4 -> rotated, same shape.
  torch::Tensor rotate(const torch::Tensor& t) const;
  int64_t tokens() const { return prefix_ + grid_h_ * grid_w_; }

 private:
  struct Tables {
    torch::Tensor cos, sin;  // (N, e): the rotation of each channel pair, signs folded into sin
  };
  const Tables& tables(int64_t e, const torch::TensorOptions& opts) const;
  int64_t grid_h_, grid_w_, prefix_;
  double theta_;
  // Built once per (width, dtype, device): every block reuses them.
  mutable std::map<std::tuple<int64_t, int, std::string>, Tables> cache_;
};

}  // namespace vitlab
