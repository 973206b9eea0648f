#include "vitlab/attention/attention.h"

#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {

AttentionDims AttentionDims::of(const ModelConfig& c) {
  return {c.dim, c.heads, c.head_width(), c.qkv_bias, c.pos == "rope", c.grid(), c.num_prefix_tokens()};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const Rope2d* rope) {
  auto p = project(x, rope);
  return combine(sdpa(p.q, p.k, p.v, p.scale));
}

torch::Tensor AttentionImpl::scores(const torch::Tensor& x, const Rope2d* rope) {
  auto p = project(x, rope);
  return torch::matmul(p.q, widen_heads(p.k, p.q.size(1)).transpose(-2, -1)) * p.scale;  // (B, h, N, N)
}

torch::Tensor merge_heads(const torch::Tensor& o) { return o.transpose(1, 2).flatten(2); }

std::vector<torch::Tensor> split_heads(const torch::Tensor& packed, int64_t parts, int64_t heads) {
  auto views = packed.view({packed.size(0), packed.size(1), parts, heads, -1}).unbind(2);  // parts x (B, N, h, f)
  for (auto& v : views) v = v.transpose(1, 2);                                             // (B, h, N, f)
  return views;
}

void require_rope_width(const AttentionDims& dims, int64_t width, const std::string& what) {
  if (dims.rope && width % 4 != 0)
    fail(what, ": ", width, " must be divisible by 4 for model.pos=rope (2-D RoPE turns pairs of channels per axis)");
}

void reject_rope(const AttentionDims& dims, const std::string& name, const std::string& why) {
  if (dims.rope) fail("model.pos: rope does not apply to attention '", name, "' (", why, ")");
}

}  // namespace vitlab
