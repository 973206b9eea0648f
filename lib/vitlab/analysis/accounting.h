#pragma once
// Parameter and FLOP accounting of a ViT, per component. FLOPs count the matrix products of
// one forward pass (a multiply-add is 2 FLOPs); norms, softmax and activations are left out.
#include "vitlab/config.h"
#include "vitlab/model/vit.h"

namespace vitlab {

struct ParamBreakdown {
  int64_t total = 0;
  int64_t embedding = 0;  // patch projection, class token, learned positions
  int64_t attention = 0;  // all layers
  int64_t attention_per_layer = 0;
  int64_t mlp = 0;
  int64_t norms = 0;
  int64_t head = 0;
  json to_json() const;
};

ParamBreakdown count_parameters(ViT& model);  // from the registered tensors, by name
double flops_per_image(ViT& model);            // forward
int64_t kv_floats_per_token(ViT& model);       // all layers
json accounting_json(ViT& model);              // params, flops_per_image, kv_floats_per_token, attention
json accounting_of(const ModelConfig& config);  // the same, for a model built on the CPU to be counted

}  // namespace vitlab
