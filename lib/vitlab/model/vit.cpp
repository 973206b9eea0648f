#include "vitlab/model/vit.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "vitlab/attention/registry.h"
#include "vitlab/compat.h"
#include "vitlab/layers/add_norm.h"

namespace vitlab {
namespace F = torch::nn::functional;

PatchEmbedImpl::PatchEmbedImpl(const ModelConfig& c) {
  proj = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_chans, c.dim, c.patch_size)
                                                       .stride(c.patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  // The stride-p convolution with a p x p kernel, computed as what it is: one matrix product of
  // the flattened patches with the flattened kernel. cuDNN runs this convolution through a
  // slow non-tensor-core kernel (implicit_convolve_sgemm: 1.6 ms of vit_small's 14 ms forward).
  const int64_t B = x.size(0), C = x.size(1), p = proj->options.kernel_size()->at(0);
  const int64_t gh = x.size(2) / p, gw = x.size(3) / p;
  // Under bf16 autocast the product casts the patches to bf16 anyway: cast first, and the
  // rearranging copy below moves half the bytes (the same values reach the product).
  const auto xc = compat::autocast_bf16_enabled(x.device().type()) ? x.to(torch::kBFloat16) : x;
  auto patches = xc.reshape({B, C, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5})  // (B, gh, gw, C, p, p)
                     .reshape({B, gh * gw, C * p * p});                          // (B, N, C p p)
  return linear(patches, proj->weight.flatten(1), proj->bias, Gelu::kNone);  // (B, N, d)
}

MlpImpl::MlpImpl(const ModelConfig& c) : kind(c.mlp) {
  fc1 = register_module("fc1", Linear(c.dim, c.mlp_hidden()));
  fc2 = register_module("fc2", Linear(c.mlp_inner(), c.dim));
  drop = register_module("drop", torch::nn::Dropout(c.drop_rate));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  // The GELU's backward runs inside fc1's (layers/linear.h). gelu_tanh: GELU's approximation
  // 0.5 z (1 + tanh(sqrt(2 / pi) (z + 0.044715 z^3))) (Hendrycks and Gimpel 2016, sec. 2).
  if (kind != "swiglu")
    return drop(fc2(drop(fc1->forward_gelu(x, kind == "gelu_tanh" ? Gelu::kTanh : Gelu::kExact))));
  auto halves = fc1(x).chunk(2, -1);  // 2 x (B, N, h/2): the gate first, as timm's SwiGLUPacked
  return drop(fc2(drop(torch::silu(halves[0]) * halves[1])));
}

LayerScaleImpl::LayerScaleImpl(int64_t dim, double init) {
  gamma = register_parameter("gamma", torch::full({dim}, init));
}

BlockImpl::BlockImpl(const ModelConfig& c, double dp) : drop_path(dp) {
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim}).eps(c.norm_eps)); };
  norm1 = register_module("norm1", ln());
  attn = register_module("attn", make_attention(c.attention, AttentionDims::of(c)));
  if (c.layer_scale > 0) ls1 = register_module("ls1", LayerScale(c.dim, c.layer_scale));
  norm2 = register_module("norm2", ln());
  mlp = register_module("mlp", Mlp(c));
  if (c.layer_scale > 0) ls2 = register_module("ls2", LayerScale(c.dim, c.layer_scale));
}

// Stochastic depth (Huang et al.): drop the residual branch per sample, rescale the kept ones.
static torch::Tensor drop_branch(const torch::Tensor& y, double p, bool training) {
  if (!training || p == 0.0) return y;
  auto keep = torch::empty({y.size(0), 1, 1}, y.options()).bernoulli_(1.0 - p);  // (B, 1, 1)
  return y * keep / (1.0 - p);
}

std::pair<torch::Tensor, torch::Tensor> BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& x_norm1,
                                                           const Rope2d* rope, const torch::nn::LayerNorm* next_norm,
                                                           bool next_feeds_linear) {
  auto a = attn->forward(x_norm1, rope);
  if (ls1) a = ls1(a);
  auto [h, h_norm2] = add_norm(x, drop_branch(a, drop_path, is_training()), norm2, /*feeds_linear=*/true);
  auto m = mlp(h_norm2);
  if (ls2) m = ls2(m);
  m = drop_branch(m, drop_path, is_training());
  if (next_norm) return add_norm(h, m, *next_norm, next_feeds_linear);
  return {h + m, torch::Tensor()};
}

torch::Tensor sincos_2d(int64_t grid, int64_t dim, int64_t prefix) {
  // Each axis gets dim/2 channels: sin and cos of pos * omega_k, omega_k = 10000^(-k / (dim/4)).
  auto omega = torch::arange(dim / 4, torch::kDouble) / (dim / 4.0);
  omega = 1.0 / torch::pow(10000.0, omega);                               // (dim/4)
  auto pos = torch::arange(grid, torch::kDouble);                         // (g)
  auto out = torch::outer(pos, omega);                                    // (g, dim/4)
  auto axis = torch::cat({torch::sin(out), torch::cos(out)}, 1);          // (g, dim/2)
  auto rows = axis.unsqueeze(1).expand({grid, grid, dim / 2});            // (g, g, dim/2), row index
  auto cols = axis.unsqueeze(0).expand({grid, grid, dim / 2});            // (g, g, dim/2), column index
  auto table = torch::cat({cols, rows}, 2).reshape({grid * grid, dim});   // (g*g, d)
  if (prefix > 0) table = torch::cat({torch::zeros({prefix, dim}, torch::kDouble), table}, 0);
  return table.unsqueeze(0).to(torch::kFloat);                            // (1, N_tokens, d)
}

int64_t square_grid_side(int64_t n) {
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return g * g == n ? g : 0;
}

torch::Tensor resample_pos_embed(const torch::Tensor& pos, int64_t prefix, int64_t new_grid) {
  const int64_t n = pos.size(1) - prefix, d = pos.size(2);
  const int64_t g = square_grid_side(n);
  TORCH_CHECK(g > 0, "position table of ", pos.size(1), " tokens is not ", prefix, " + a square grid");
  if (g == new_grid) return pos;
  // In float32 whatever the stored dtype, as timm (interpolate needs it for half types).
  auto grid = pos.narrow(1, prefix, n).to(torch::kFloat).reshape({1, g, g, d}).permute({0, 3, 1, 2});  // (1, d, g, g)
  grid = F::interpolate(grid, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{new_grid, new_grid})
                                  .mode(torch::kBicubic)
                                  .align_corners(false)
                                  .antialias(true));                                          // (1, d, G, G)
  grid = grid.permute({0, 2, 3, 1}).reshape({1, new_grid * new_grid, d}).to(pos.scalar_type());  // (1, G*G, d)
  return torch::cat({pos.narrow(1, 0, prefix), grid}, 1);                                     // (1, prefix + G*G, d)
}

ViTImpl::ViTImpl(const ModelConfig& c) : cfg(c) {
  c.validate();
  patch_embed = register_module("patch_embed", PatchEmbed(c));
  if (c.has_class_token()) cls_token = register_parameter("cls_token", torch::randn({1, 1, c.dim}) * 1e-6);
  if (c.dist_token) dist_token = register_parameter("dist_token", torch::randn({1, 1, c.dim}) * 0.02);
  if (c.reg_tokens > 0) reg_token = register_parameter("reg_token", torch::randn({1, c.reg_tokens, c.dim}) * 1e-6);
  if (c.pos == "learned")
    pos_embed = register_parameter("pos_embed", torch::randn({1, c.pos_tokens(), c.dim}) * 0.02);
  else if (c.pos == "sincos")
    pos_embed = register_buffer("pos_embed", sincos_2d(c.grid(), c.dim, c.pos_tokens() - c.num_patches()));
  else if (c.pos == "rope")
    rope = std::make_shared<Rope2d>(c.grid(), c.grid(), c.num_prefix_tokens(), c.rope_theta);
  pos_drop = register_module("pos_drop", torch::nn::Dropout(c.drop_rate));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < c.depth; ++i)
    blocks->push_back(Block(c, c.depth > 1 ? c.drop_path * i / (c.depth - 1) : c.drop_path));
  auto final_norm = torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim}).eps(c.norm_eps));
  if (c.fc_norm) fc_norm = register_module("fc_norm", final_norm);
  else norm = register_module("norm", final_norm);
  if (c.num_classes > 0) {  // 0: a backbone, whose output is the pooled features (timm's Identity head)
    head = register_module("head", Linear(c.dim, c.num_classes));
    if (c.dist_head) head_dist = register_module("head_dist", Linear(c.dim, c.num_classes));
  }

  // timm's ViT init: truncated-normal(0.02) linear weights (the truncation at +-2 is inert at
  // this std), zero biases; the patch projection keeps its fan-in init.
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      lin->weight.normal_(0.0, 0.02);
      if (lin->bias.defined()) lin->bias.zero_();
    }
  }
}

torch::Tensor ViTImpl::forward_features(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == cfg.in_chans && x.size(2) == cfg.image_size && x.size(3) == cfg.image_size,
              "ViT expects (B, ", cfg.in_chans, ", ", cfg.image_size, ", ", cfg.image_size, ") input, got ", x.sizes());
  auto t = patch_embed(x);  // (B, N, d)
  torch::Tensor pos = pos_embed;
  if (cfg.no_embed_class && pos.defined()) {  // the patches' positions before the prefix joins (timm)
    t = t + pos;
    pos = torch::Tensor();
  }
  const int64_t B = t.size(0);
  std::vector<torch::Tensor> parts;  // [class, distillation, registers,] patches
  if (cls_token.defined()) parts.push_back(cls_token.expand({B, 1, cfg.dim}));
  if (dist_token.defined()) parts.push_back(dist_token.expand({B, 1, cfg.dim}));
  if (reg_token.defined()) parts.push_back(reg_token.expand({B, cfg.reg_tokens, cfg.dim}));
  if (!parts.empty()) {
    parts.push_back(t);
    t = torch::cat(parts, 1);  // (B, prefix + N, d)
  }
  auto* first = blocks->size() ? blocks[0]->as<Block>() : nullptr;
  torch::Tensor t_norm;
  if (first && pos.defined() && (pos_drop->options.p() == 0 || !is_training())) {
    // The position add and the first norm1 as one add_norm, like every later residual add.
    std::tie(t, t_norm) = add_norm(t, pos, first->norm1, first->attn->reads_input_through_linear());
  } else {
    if (pos.defined()) t = t + pos;
    t = pos_drop(t);
    if (!first) return norm ? norm(t) : t;
    t_norm = first->norm1(t);
  }
  // Each block hands on its output and the next norm of it: the next block's norm1, and after
  // the last block the final norm (whose output goes to pooling, not to a Linear).
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto* next = i + 1 < blocks->size() ? blocks[i + 1]->as<Block>() : nullptr;
    const torch::nn::LayerNorm* next_norm = next ? &next->norm1 : (norm ? &norm : nullptr);
    std::tie(t, t_norm) = blocks[i]->as<Block>()->forward(t, t_norm, rope.get(), next_norm,
                                                          next && next->attn->reads_input_through_linear());
  }
  return norm ? t_norm : t;
}

torch::Tensor ViTImpl::forward(const torch::Tensor& x) {
  LentBf16Weights bf16_weights(*this, x);  // every Linear's bf16 weights in one cast (layers/linear.h)
  auto t = forward_features(x);                                               // (B, N_tokens, d)
  torch::Tensor pooled;                                                       // (B, d)
  if (cfg.pool == "cls") {
    pooled = t.select(1, 0);
  } else {  // "mean" and "avgmax" pool the patch tokens only
    const int64_t prefix = cfg.num_prefix_tokens();
    auto patches = t.narrow(1, prefix, t.size(1) - prefix);                   // (B, N, d)
    pooled = cfg.pool == "mean" ? patches.mean(1) : 0.5 * (patches.amax(1) + patches.mean(1));
  }
  if (fc_norm) pooled = fc_norm(pooled);
  auto out = head ? head(pooled) : pooled;                                    // (B, classes) or (B, d)
  if (cfg.dist_head) {                                                        // DeiT: both heads, averaged
    auto dist = t.select(1, 1);                                               // (B, d)
    return (out + (head_dist ? head_dist(dist) : dist)) / 2;
  }
  return out;
}

torch::Tensor preprocess(const torch::Tensor& images, const ModelConfig& c) {
  // (x / 255 - mean) / std as one multiply-add, x * scale + shift, read straight from the bytes:
  // one pass over the batch instead of four. The per-channel constants are filled in on the
  // device: copying them from the host would make every step wait for the GPU.
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(images.device());
  const size_t C = std::max(c.mean.size(), c.std.size());  // each has 1 or in_chans entries
  auto at = [](const std::vector<double>& v, size_t i) { return v[v.size() == 1 ? 0 : i]; };
  auto scale = torch::empty({1, static_cast<int64_t>(C), 1, 1}, opts), shift = torch::empty_like(scale);  // (1, C, 1, 1)
  for (size_t i = 0; i < C; ++i) {
    scale.select(1, static_cast<int64_t>(i)).fill_(1.0 / (255.0 * at(c.std, i)));
    shift.select(1, static_cast<int64_t>(i)).fill_(-at(c.mean, i) / at(c.std, i));
  }
  return torch::addcmul(shift, images, scale);  // (B, C, H, W) float32
}

}  // namespace vitlab
