#pragma once
// The ranks an attention layer actually uses (DESIGN section 7). An MHA layer's bilinear forms
// are two 3-way tensors (DESIGN section 4): T_qk[i] = W_q^i W_k^i^T (the scores of head i are
// x T_qk[i] x^T / sqrt(d_h)) and T_ov[i] = W_v^i W_o^i (head i adds A_i x T_ov[i] to the output),
// each h x d x d. Each mode's unfolding has a singular spectrum; its decay says how far the
// layer could be compressed along that mode (Tucker ranks r_head, r_in, r_out).
#include <torch/torch.h>

#include <string>

#include "vitlab/attention/mha.h"
#include "vitlab/config.h"
#include "vitlab/model/vit.h"

namespace vitlab {

struct AttentionTensors {
  torch::Tensor qk, ov;  // (h, d, d) each, float64
};
// T_qk and T_ov from weights in torch.nn.Linear layout, head-major: W_q, W_k, W_v (h d_h, d)
// (keys/values given per query head) and W_o (d, h d_h).
AttentionTensors attention_tensors(const torch::Tensor& Wq, const torch::Tensor& Wk, const torch::Tensor& Wv,
                                   const torch::Tensor& Wo, int64_t heads);
// The layer's T_qk and T_ov in float64 (input-projection biases are not part of the bilinear forms).
AttentionTensors attention_tensors(const MhaImpl& m);

// The mode-n unfolding of a 3-way tensor T (n1 x n2 x n3): rows indexed by mode n.
torch::Tensor unfold(const torch::Tensor& T, int mode);

// Smallest r whose leading singular values hold `fraction` of the energy sum(s^2).
int64_t energy_rank(const torch::Tensor& singular_values, double fraction);
// exp of the entropy of the normalised singular values p_k = s_k / sum(s) (Roy and Vetterli).
double effective_rank(const torch::Tensor& singular_values);
// {singular_values, effective_rank, rank_90, rank_99, rank_999, size}.
json spectrum_json(const torch::Tensor& singular_values);

// Every layer's six mode spectra: {schema, model, layers: [{layer, qk: {head, query, key},
// ov: {head, value, output}}]}. Every layer must be MHA.
json rank_report(ViT& model);
// Effective rank and 99%-energy rank of each mode against depth, as FILE.png / FILE.svg.
std::string draw_rank_plot(const json& report, const std::string& out);

}  // namespace vitlab
