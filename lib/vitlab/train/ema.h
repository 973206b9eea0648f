#pragma once
// Exponential moving average of the model's parameters (Polyak averaging, as timm's ModelEmaV2):
// ema <- decay * ema + (1 - decay) * param after every optimizer step.
#include <torch/torch.h>

#include <vector>

#include "vitlab/model/vit.h"

namespace vitlab {

class Ema {
 public:
  Ema(ViT& model, double decay);
  void update(ViT& model);
  void copy_to(ViT& model) const;  // loads the averaged weights into `model`
  std::vector<torch::Tensor>& tensors() { return shadow_; }

 private:
  double decay_;
  std::vector<torch::Tensor> shadow_;
};

}  // namespace vitlab
