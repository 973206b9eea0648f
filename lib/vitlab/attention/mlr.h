#pragma once
// Multi-level low-rank scoring (arXiv 2509.07963, "Customizing the Inductive Biases of Softmax
// Attention using Structured Matrices"). Each head's width d_h is split into level ranks
// r_0 + ... + r_L = d_h; level l partitions the tokens into cells and only pairs in the same
// cell get that level's term:
//   s_ij = sum_l [cell_l(i) == cell_l(j)] q_i^(l) . k_j^(l) / sqrt(d_h).
// Level 0 is global. Layout "quadtree" (default) cuts each axis of the patch grid into 2^l parts
// at level l, so nearby patches share more rank; "sequence" halves the raster order per level,
// like the language-model original. The class token belongs to level 0 only.
// Two paths give the same scores: "onehot" appends to each level's q and k the one-hot of its
// cell (width sum_l r_l cells_l), a plain dot product for the fused kernel; "masked" composes
// the masked level scores explicitly. "auto" takes onehot while its width is at most 256.
// Parameters and names as MHA, so MHA weights load unchanged and one level is MHA.
#include "vitlab/attention/attention.h"

#include <string>
#include <vector>

namespace vitlab {

class MlrImpl : public AttentionImpl {
 public:
  MlrImpl(const AttentionDims& dims, std::vector<int64_t> ranks, std::string layout, std::string path);
  torch::Tensor forward(const torch::Tensor& x, const Rope2d* rope = nullptr) override;
  torch::Tensor scores(const torch::Tensor& x, const Rope2d* rope = nullptr) override;
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;  // the onehot expansion
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  // The onehot path reads x once, through qkv (the masked path runs qkv twice).
  bool reads_input_through_linear() const override { return uses_onehot(); }

  // (B, h, N, d_h) -> (B, h, N, onehot width): each level's columns times the one-hot of the
  // token's cell; on CUDA in bf16 through kernels/mlr_onehot.cu.
  torch::Tensor expand(const torch::Tensor& t);
  int64_t onehot_width() const;  // sum_l r_l cells_l
  bool uses_onehot() const;      // the path forward() takes

  AttentionDims dims;
  std::vector<int64_t> ranks;  // r_0 .. r_L
  std::string layout, path;
  Linear qkv{nullptr};   // d -> 3 h d_h, as MHA
  Linear proj{nullptr};  // h d_h -> d (W_o)

 private:
  // Per level the (N, cells_l) one-hot of each token's cell (the class token's row is zero at
  // levels >= 1), built for `like`'s dtype and device; N must be the layer's token count.
  const std::vector<torch::Tensor>& cells(const torch::Tensor& like, int64_t N);
  // (levels, N) int32 on `like`'s device: each token's cell per level, -1 for none (the one-hot
  // kernel's form of the same table).
  const torch::Tensor& cell_table(const torch::Tensor& like, int64_t N);
  std::vector<int64_t> cell_counts_;
  std::vector<std::vector<int64_t>> cell_of_;  // [level][token], -1: in no cell
  std::vector<torch::Tensor> onehots_;
  torch::Tensor cell_table_;
};

AttentionPtr make_mlr(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
