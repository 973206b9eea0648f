#pragma once
// The interface every attention variant implements (DESIGN section 4). Tokens in and out are
// (B, N, dim); each variant owns its projections, including the output projection.
#include <torch/torch.h>

#include <memory>

#include "vitlab/attention/rope.h"
#include "vitlab/config.h"
#include "vitlab/layers/linear.h"

namespace vitlab {

// Sizes the model hands to every attention constructor.
struct AttentionDims {
  int64_t dim;       // model width d
  int64_t heads;     // h
  int64_t head_dim;  // d_h
  bool qkv_bias;     // biases on the input projections (the output projection always has one)
  bool rope = false; // the model rotates queries and keys (model.pos = "rope")
  int64_t grid = 0;  // the patch grid is grid x grid (0: unknown, for layers used outside a ViT)
  int64_t prefix = 0;  // tokens before the patches (class, distillation, registers)

  static AttentionDims of(const ModelConfig& c);
};

// What the score kernel consumes: q (B, h, N, e), k (B, h, M, e), v (B, h, M, f) and the scale
// of softmax(q k^T * scale) v.
struct Projected {
  torch::Tensor q, k, v;
  double scale;
};

class AttentionImpl : public torch::nn::Module {
 public:
  // (B, N, d) -> (B, N, d); `rope` is the model's rotation when model.pos is "rope".
  // By default combine(sdpa(project(x))), the fused kernel where LibTorch has one.
  virtual torch::Tensor forward(const torch::Tensor& x, const Rope2d* rope = nullptr);
  // The pre-softmax scores (B, h, N, N), scale included: attention maps and tests.
  virtual torch::Tensor scores(const torch::Tensor& x, const Rope2d* rope = nullptr);
  // Queries, keys and values in the kernel's layout, rotated when `rope` is given.
  virtual Projected project(const torch::Tensor& x, const Rope2d* rope) = 0;
  // The kernel's output (B, h, N, f) -> (B, N, d).
  virtual torch::Tensor combine(const torch::Tensor& o) = 0;

  // Exact number of parameters (equals the sum of numel of the registered tensors).
  virtual int64_t parameter_count() const = 0;
  // Floats a KV cache would hold per token (keys + values, all heads).
  virtual int64_t kv_floats_per_token() const = 0;
  // Forward FLOPs per token at sequence length n (a multiply-add counts 2).
  virtual double flops_per_token(int64_t n) const = 0;
  // The variant's hyper-parameters and which kernel path it takes.
  virtual json describe() const = 0;
  // Whether project() reads x only through matrix products (Linear layers, matmul), which under
  // bf16 autocast cast it to bf16 first: the LayerNorm before this layer may then hand x over in
  // bf16 (layers/add_norm.h).
  virtual bool reads_input_through_linear() const { return false; }
};

using AttentionPtr = std::shared_ptr<AttentionImpl>;

// (B, h, N, f) -> (B, N, h f): the heads side by side, as the output projection reads them.
torch::Tensor merge_heads(const torch::Tensor& o);

// A packed projection (B, N, parts h f), e.g. q, k and v from one Linear, as `parts` views
// (B, h, N, f), no copy. unbind rather than indexing: unbind's backward stacks the parts'
// gradients straight into the packed layout, where each index's backward zero-fills a tensor of
// the full packed size, copies into it and adds it to the others (about 0.5 ms of every block's
// backward in vit_small p16's training step).
std::vector<torch::Tensor> split_heads(const torch::Tensor& packed, int64_t parts, int64_t heads);

// Variants call these while validating their options: `width` is what RoPE would rotate.
void require_rope_width(const AttentionDims& dims, int64_t width, const std::string& what);
void reject_rope(const AttentionDims& dims, const std::string& name, const std::string& why);

}  // namespace vitlab
