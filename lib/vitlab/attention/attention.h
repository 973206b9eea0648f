#pragma once
// The interface every attention variant implements (DESIGN section 4). Tokens in and out are
// (B, N, dim); each variant owns its projections, including the output projection.
#include <torch/torch.h>

#include <memory>

#include "vitlab/config.h"

namespace vitlab {

// Sizes the model hands to every attention constructor.
struct AttentionDims {
  int64_t dim;       // model width d
  int64_t heads;     // h
  int64_t head_dim;  // d_h
  bool qkv_bias;     // biases on the input projections (the output projection always has one)
};

class AttentionImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;  // (B, N, d) -> (B, N, d)
  // Exact number of parameters (equals the sum of numel of the registered tensors).
  virtual int64_t parameter_count() const = 0;
  // Floats a KV cache would hold per token (keys + values, all heads).
  virtual int64_t kv_floats_per_token() const = 0;
  // Forward FLOPs per token at sequence length n (a multiply-add counts 2).
  virtual double flops_per_token(int64_t n) const = 0;
  // The variant's hyper-parameters and which kernel path it takes.
  virtual json describe() const = 0;
};

using AttentionPtr = std::shared_ptr<AttentionImpl>;

}  // namespace vitlab
