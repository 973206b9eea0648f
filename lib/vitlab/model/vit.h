#pragma once
// The Vision Transformer (Dosovitskiy et al.; timm's layout and parameter names): conv patch
// embedding, optional class token, learned or sin-cos 2-D positions or 2-D RoPE (applied inside
// attention), pre-norm blocks
// x + Attn(LN(x)), x + MLP(LN(x)), final LN, pooled linear head.
#include <torch/torch.h>

#include "vitlab/attention/attention.h"
#include "vitlab/config.h"

namespace vitlab {

class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // (B, C, H, W) -> (B, N, d)
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// fc2(act(fc1(x))): the exact GELU, its tanh approximation, or SiLU(a) * b of fc1's two halves
// (config.h: mlp).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
  std::string kind;  // model.mlp
};
TORCH_MODULE(Mlp);

// x * gamma with a learned per-channel gamma (timm's LayerScale, parameter "gamma").
class LayerScaleImpl : public torch::nn::Module {
 public:
  LayerScaleImpl(int64_t dim, double init);
  torch::Tensor forward(const torch::Tensor& x) { return x * gamma; }
  torch::Tensor gamma;  // (d)
};
TORCH_MODULE(LayerScale);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& c, double drop_path);
  // x -> x + attn(norm1 x) -> h + mlp(norm2 h). Given x and norm1(x), returns the block's output
  // and, with `next_norm`, that norm of it: each residual add is then computed together with the
  // LayerNorm that reads it (layers/add_norm.h), across the block boundary too.
  // `next_feeds_linear`: the next block's attention reads its input only through Linear layers.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& x_norm1,
                                                  const Rope2d* rope, const torch::nn::LayerNorm* next_norm,
                                                  bool next_feeds_linear);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  AttentionPtr attn;
  Mlp mlp{nullptr};
  LayerScale ls1{nullptr}, ls2{nullptr};  // only with model.layer_scale > 0
  double drop_path;
};
TORCH_MODULE(Block);

class ViTImpl : public torch::nn::Module {
 public:
  explicit ViTImpl(const ModelConfig& c);
  // (B, C, H, W) -> (B, N_tokens, d): the class, distillation and register tokens, then the
  // patches; after the final norm unless model.fc_norm (as timm)
  torch::Tensor forward_features(const torch::Tensor& x);
  torch::Tensor forward(const torch::Tensor& x);           // (B, C, H, W) -> (B, classes)

  ModelConfig cfg;
  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token;  // (1, 1, d), only with a class token (pool "cls", or model.class_token)
  torch::Tensor dist_token;  // (1, 1, d), only with model.dist_token
  torch::Tensor reg_token;   // (1, R, d), only with model.reg_tokens = R > 0
  torch::Tensor pos_embed;  // (1, pos_tokens, d): a parameter ("learned") or a buffer ("sincos")
  torch::nn::Dropout pos_drop{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};     // on every token, or
  torch::nn::LayerNorm fc_norm{nullptr};  // on the pooled token (model.fc_norm)
  Linear head{nullptr};
  Linear head_dist{nullptr};  // only with model.dist_head
  std::shared_ptr<Rope2d> rope;  // with pos "rope": the rotation every block applies
};
TORCH_MODULE(ViT);

// 2-D sin-cos position table (MAE / timm): half the width encodes the row, half the column;
// `prefix` zero rows first (the class token's, ...).
torch::Tensor sincos_2d(int64_t grid, int64_t dim, int64_t prefix);

// The side g of a g x g grid of n tokens, or 0 when n is not a square.
int64_t square_grid_side(int64_t n);

// A learned position table (1, prefix + g*g, d) for another grid: the g x g part resampled to
// new_grid x new_grid (bicubic, antialiased, align_corners false: timm's resample_abs_pos_embed,
// what timm does when a checkpoint is loaded at another image size); the `prefix` rows (the class
// token's) are kept. Returns `pos` itself when the grid already fits.
torch::Tensor resample_pos_embed(const torch::Tensor& pos, int64_t prefix, int64_t new_grid);

// uint8 images (B, C, H, W) -> float, scaled to [0, 1] and normalised by the model's mean/std.
torch::Tensor preprocess(const torch::Tensor& images, const ModelConfig& c);

}  // namespace vitlab
