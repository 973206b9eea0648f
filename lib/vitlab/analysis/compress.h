#pragma once
// Compressing a trained MHA model into a factorised attention variant (DESIGN section 7),
// truncating wherever the target is smaller than the source:
//   tucker: truncated HOSVD of each layer's T_qk and T_ov (analysis/ranks.h), optionally
//           refined by HOOI sweeps; the factors and cores become the Tucker layer's parameters;
//   gqa:    key and value heads mean-pooled within each group of query heads;
//   mla:    truncated SVD of the stacked key/value map [W_k W_v] (d x 2 h d_h): the best
//           rank-r_kv approximation (Eckart-Young), queries kept whole (q_rank 0).
// Biases of the input projections: the key bias adds the same amount to all scores of a query
// and drops out of the softmax; the value bias adds b_v^i W_o^i to every output and is folded
// into the output bias; the query bias adds b_q^i W_k^i^T x_j, a term linear in the key token
// that Tucker and MLA cannot hold: it is dropped there (its size is reported).
#include <array>

#include "vitlab/attention/gqa.h"
#include "vitlab/attention/mha.h"
#include "vitlab/attention/mla.h"
#include "vitlab/attention/tucker.h"
#include "vitlab/model/vit.h"

namespace vitlab {

// T ~ core x_1 U[0] x_2 U[1] x_3 U[2], U[n] (size_n x rank_n) with orthonormal columns.
struct Tucker3 {
  torch::Tensor core;
  std::array<torch::Tensor, 3> U;
};
// Truncated higher-order SVD: U[n] = the leading left singular vectors of the mode-n unfolding,
// then `hooi_sweeps` sweeps of higher-order orthogonal iteration (each U[n] from the unfolding
// of T projected on the other two factors).
Tucker3 hosvd(const torch::Tensor& T, const std::array<int64_t, 3>& ranks, int hooi_sweeps = 0);
torch::Tensor reconstruct(const Tucker3& t);

// Each fills the target layer from the source and returns {qk_error, ov_error} (relative
// Frobenius errors of the target's T_qk and T_ov) and dropped_query_bias (|b_q| / |W_q|, 0
// when the target keeps it).
json tucker_compress(TuckerImpl& t, const MhaImpl& m, int hooi_sweeps = 0);
json gqa_compress(GqaImpl& g, const MhaImpl& m);
json mla_compress(MlaImpl& l, const MhaImpl& m);

// The target attention for `to` (tucker or mla) whose ranks hold `energy` of every layer's
// spectrum (per mode, the largest rank any layer needs).
AttentionConfig attention_for_energy(ViT& src, const std::string& to, double energy);
// A model of src's config with `attention` (tucker, gqa or mla), every other weight copied and
// each layer compressed. `report` gets per-layer errors and the attention parameter counts.
ViT compress_model(ViT& src, const AttentionConfig& attention, int hooi_sweeps, json* report);

}  // namespace vitlab
