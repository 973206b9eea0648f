#include <gtest/gtest.h>

#include <optional>

#include "test_util.h"
#include "vitlab/analysis/accounting.h"
#include "vitlab/compat.h"
#include "vitlab/device.h"
#include "vitlab/layers/add_norm.h"
#include "vitlab/layers/linear.h"
#include "vitlab/model/vit.h"

using namespace vitlab;
using vitlab::test::error_of;

namespace {

// The closed form of DESIGN section 3 with MHA attention (inner width h * d_h = d here).
int64_t closed_form_params(const ModelConfig& c) {
  const int64_t d = c.dim, p = c.patch_size, hid = c.mlp_hidden(), inner = c.heads * c.head_width();
  int64_t embed = c.in_chans * p * p * d + d + (c.num_prefix_tokens() * d) + (c.pos == "learned" ? c.pos_tokens() * d : 0);
  int64_t attn = 4 * d * inner + (c.qkv_bias ? 3 * inner : 0) + d;
  int64_t mlp = d * hid + hid + c.mlp_inner() * d + d;  // a gated MLP's fc2 reads hid / 2
  int64_t block = attn + mlp + 4 * d + (c.layer_scale > 0 ? 2 * d : 0);
  const int64_t heads = c.num_classes == 0 ? 0 : c.dist_head ? 2 : 1;  // num_classes 0: no classifier
  return embed + c.depth * block + 2 * d + heads * (d * c.num_classes + c.num_classes);
}

}  // namespace

TEST(ViT, ShapesForEveryPresetAndPooling) {
  torch::NoGradGuard no_grad;
  for (const char* preset : {"vit-micro", "vit-tiny", "vit-small", "vit-base"})
    for (const char* pool : {"cls", "mean"}) {
      ModelConfig c = model_preset(preset);
      c.image_size = 32, c.patch_size = 16, c.in_chans = 3, c.num_classes = 7, c.pool = pool;
      ViT m(c);
      m->eval();
      auto x = torch::randn({2, 3, 32, 32});
      EXPECT_EQ(m->forward_features(x).sizes(), (std::vector<int64_t>{2, c.num_tokens(), c.dim})) << preset;
      EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{2, 7})) << preset << " " << pool;
    }
}

TEST(ViT, AnyImageSizeAndChannelCount) {
  torch::NoGradGuard no_grad;
  ModelConfig c;
  c.dim = 32, c.depth = 1, c.heads = 2, c.image_size = 20, c.patch_size = 5, c.in_chans = 5;
  c.mean = {0.5}, c.std = {0.5};
  ViT m(c);
  EXPECT_EQ(m->forward(torch::randn({3, 5, 20, 20})).sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(c.num_tokens(), 17);
}

// The patch embedding's matrix product over flattened patches is its convolution (float64),
// with several channels, a non-square grid and a batch.
TEST(ViT, PatchEmbeddingEqualsItsConvolution) {
  ModelConfig c;
  c.dim = 6, c.patch_size = 4, c.in_chans = 3;
  PatchEmbed pe(c);
  pe->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 3, 8, 12}, torch::kDouble);
  auto conv = pe->proj(x).flatten(2).transpose(1, 2);  // (B, d, 2, 3) -> (B, 6, d), row-major grid
  auto got = pe->forward(x);
  ASSERT_EQ(got.sizes(), conv.sizes());
  EXPECT_LE((got - conv).abs().max().item<double>(), 1e-12);
}

// preprocess is (x / 255 - mean) / std per channel, computed as one multiply-add from the bytes;
// a one-entry mean or std applies to every channel.
TEST(ViT, PreprocessNormalisesEachChannel) {
  ModelConfig c;
  c.in_chans = 3, c.mean = {0.25}, c.std = {0.5, 0.2, 0.1};
  auto images = torch::randint(0, 256, {2, 3, 5, 7}, torch::kUInt8);
  auto got = preprocess(images, c);
  ASSERT_EQ(got.scalar_type(), torch::kFloat);
  ASSERT_EQ(got.sizes(), images.sizes());
  auto x = images.to(torch::kDouble) / 255.0;
  for (int64_t ch = 0; ch < 3; ++ch) {
    auto want = (x.select(1, ch) - 0.25) / c.std[ch];
    EXPECT_LE((got.select(1, ch).to(torch::kDouble) - want).abs().max().item<double>(), 1e-5) << "channel " << ch;
  }
}

TEST(ViT, ParameterCountIsSumOfNumelAndClosedForm) {
  for (const char* pos : {"learned", "sincos", "none"})
    for (bool qkv_bias : {true, false})
      for (const char* pool : {"cls", "mean"}) {
        ModelConfig c = model_preset("vit-micro");
        c.pos = pos, c.qkv_bias = qkv_bias, c.pool = pool, c.mlp_ratio = 3.0;
        c.fc_norm = !qkv_bias, c.layer_scale = qkv_bias ? 0.0 : 1e-5;
        if (std::string(pool) == "mean" && std::string(pos) == "learned") c.class_token = !qkv_bias;
        ViT m(c);
        int64_t numel = 0;
        for (const auto& p : m->parameters()) numel += p.numel();
        ParamBreakdown b = count_parameters(m);
        EXPECT_EQ(b.total, numel);
        EXPECT_EQ(b.total, closed_form_params(c)) << pos << qkv_bias << pool;
        EXPECT_EQ(b.embedding + b.attention + b.mlp + b.norms + b.head, b.total);
        EXPECT_EQ(b.attention_per_layer, m->blocks[0]->as<Block>()->attn->parameter_count());
      }
  // With DeiT's distillation token and head, and register tokens in or out of the position table.
  for (bool outside : {false, true}) {
    ModelConfig c = model_preset("vit-micro");
    c.reg_tokens = 3, c.no_embed_class = outside, c.dist_token = c.dist_head = !outside;
    ViT m(c);
    ParamBreakdown b = count_parameters(m);
    EXPECT_EQ(b.total, closed_form_params(c)) << outside;
    EXPECT_EQ(b.embedding + b.attention + b.mlp + b.norms + b.head, b.total);
    EXPECT_EQ(m->pos_embed.size(1), outside ? c.num_patches() : c.num_patches() + 5);
  }
  // A SwiGLU MLP (fc2 reads half of fc1's width) and a backbone without a classifier.
  for (int classes : {0, 10}) {
    ModelConfig c = model_preset("vit-micro");
    c.mlp = "swiglu", c.mlp_ratio = 2.5, c.num_classes = classes;  // fc1 320 wide, fc2 reads 160
    ViT m(c);
    ParamBreakdown b = count_parameters(m);
    EXPECT_EQ(m->blocks[0]->as<Block>()->mlp->fc2->weight.sizes(), (std::vector<int64_t>{128, 160}));
    EXPECT_EQ(b.total, closed_form_params(c)) << classes;
    EXPECT_EQ(b.head, classes ? 128 * 10 + 10 : 0);
    EXPECT_EQ(b.embedding + b.attention + b.mlp + b.norms + b.head, b.total);
  }
}

// model.mlp gelu_tanh: fc2(gelu(fc1 x)) with GELU's tanh approximation, 0.5 z (1 + tanh(sqrt(2 /
// pi) (z + 0.044715 z^3))), written out here in float64; the exact GELU's MLP differs from it.
TEST(ViT, GeluTanhMlp) {
  torch::NoGradGuard no_grad;
  ModelConfig c;
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.mlp = "gelu_tanh";
  c.validate();
  EXPECT_EQ(model_from_json(to_json(c)).mlp, "gelu_tanh");
  ViT m(c);
  m->to(torch::kDouble);
  auto& mlp = m->blocks[0]->as<Block>()->mlp;
  auto x = torch::randn({2, 5, 16}, torch::kDouble) * 2;
  auto z = torch::addmm(mlp->fc1->bias, x.reshape({10, 16}), mlp->fc1->weight.t()).reshape({2, 5, 64});
  auto h = 0.5 * z * (1 + torch::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z.pow(3))));
  auto want = torch::matmul(h, mlp->fc2->weight.t()) + mlp->fc2->bias;
  EXPECT_LE((mlp->forward(x) - want).abs().max().item<double>(), 1e-12);
  mlp->kind = "gelu";  // the exact GELU: another function
  EXPECT_GT((mlp->forward(x) - want).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(count_parameters(m).total, closed_form_params(c));
}

// The gated MLP is timm's SwiGLUPacked with SiLU: fc2(SiLU(a) * b) for fc1's output halves
// [a, b] (float64); a model with num_classes 0 returns the pooled features (timm's Identity head),
// a distilled one the mean of its class and distillation tokens.
TEST(ViT, SwigluMlpAndBackboneWithoutClassifier) {
  torch::NoGradGuard no_grad;
  ModelConfig c;
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.mlp = "swiglu", c.mlp_ratio = 1.5;
  ViT m(c);
  m->to(torch::kDouble);
  auto& mlp = m->blocks[0]->as<Block>()->mlp;
  auto x = torch::randn({2, 5, 16}, torch::kDouble);
  auto h = torch::addmm(mlp->fc1->bias, x.reshape({10, 16}), mlp->fc1->weight.t()).reshape({2, 5, 24});
  auto gated = h.narrow(2, 0, 12) / (1 + torch::exp(-h.narrow(2, 0, 12))) * h.narrow(2, 12, 12);  // SiLU(a) * b
  auto want = torch::matmul(gated, mlp->fc2->weight.t()) + mlp->fc2->bias;
  EXPECT_LE((mlp->forward(x) - want).abs().max().item<double>(), 1e-12);
  c.mlp_ratio = 21.0 / 16;  // fc1 21 wide: no halves
  EXPECT_NE(error_of([&] { c.validate(); }).find("even hidden width"), std::string::npos);
  c.mlp = "geglu";
  EXPECT_NE(error_of([&] { c.validate(); }).find("model.mlp: 'geglu' is not one of gelu, gelu_tanh, swiglu"),
            std::string::npos);

  c = ModelConfig{};
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.num_classes = 0;
  auto images = torch::randn({2, 1, 8, 8});
  for (bool distilled : {false, true}) {
    c.dist_token = c.dist_head = distilled;
    ViT b(c);
    b->eval();
    EXPECT_FALSE(b->head) << distilled;
    EXPECT_FALSE(b->named_parameters().contains("head.weight"));
    auto t = b->forward_features(images);  // (B, N, d), after the final norm
    auto want = distilled ? (t.select(1, 0) + t.select(1, 1)) / 2 : t.select(1, 0);
    EXPECT_TRUE(torch::equal(b->forward(images), want)) << distilled;
  }
  c.num_classes = 1;
  EXPECT_NE(error_of([&] { c.validate(); }).find("or 0 for a backbone without a classifier"), std::string::npos);
}

// The tokens before the patches, as timm lays them out: [class, distillation, registers,
// patches]; average pooling skips all of them, avgmax is (max + mean) / 2 over the patches, and
// a distilled model's logits are the mean of its class head and its distillation head.
TEST(ViT, PrefixTokensPoolingAndDistilledHead) {
  ModelConfig c;
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.in_chans = 1, c.num_classes = 3;
  c.mean = {0}, c.std = {1};
  c.reg_tokens = 2, c.no_embed_class = true, c.pool = "mean", c.class_token = true;
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 1, 8, 8});
  for (const char* pool : {"mean", "avgmax"}) {
    c.pool = pool;
    ViT m(c);
    m->eval();
    auto t = m->forward_features(x);  // (B, 1 + 2 + 4, d)
    ASSERT_EQ(t.size(1), 7);
    auto patches = t.narrow(1, 3, 4);
    auto pooled = c.pool == "mean" ? patches.mean(1) : (patches.amax(1) + patches.mean(1)) / 2;
    EXPECT_TRUE(torch::allclose(m->forward(x), m->head(pooled), 1e-5, 1e-6)) << pool;
  }
  c = ModelConfig{};
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.in_chans = 1, c.num_classes = 3;
  c.dist_token = c.dist_head = true;
  ViT d(c);
  d->eval();
  auto t = d->forward_features(x);  // (B, 2 + 4, d)
  ASSERT_EQ(t.size(1), 6);
  EXPECT_TRUE(torch::allclose(d->forward(x), (d->head(t.select(1, 0)) + d->head_dist(t.select(1, 1))) / 2, 1e-5, 1e-6));
  c.pool = "mean", c.class_token = true;
  EXPECT_NE(error_of([&] { c.validate(); }).find("model.dist_head"), std::string::npos);
  c.pool = "cls", c.class_token = false;
  EXPECT_NE(error_of([&] { c.validate(); }).find("model.class_token"), std::string::npos);
}

// timm's options: LayerScale of 1 changes nothing, and fc_norm normalises the pooled token.
TEST(ViT, LayerScaleAndFcNormAsTimm) {
  ModelConfig c;
  c.dim = 16, c.depth = 2, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.in_chans = 1, c.pool = "mean";
  c.mean = {0}, c.std = {1};
  ViT plain(c);
  c.layer_scale = 1.0, c.fc_norm = true;
  ViT timm_like(c);
  torch::NoGradGuard no_grad;
  const auto from = plain->named_parameters();
  for (auto& p : timm_like->named_parameters()) {
    if (p.key().find(".ls") != std::string::npos) continue;  // gamma stays 1
    const std::string name = p.key().rfind("fc_norm.", 0) == 0 ? p.key().substr(3) : p.key();
    p.value().copy_(from[name]);
  }
  EXPECT_TRUE(timm_like->named_parameters().contains("blocks.1.ls2.gamma"));
  EXPECT_FALSE(timm_like->named_parameters().contains("norm.weight"));
  plain->norm->weight.normal_(), plain->norm->bias.normal_();
  timm_like->fc_norm->weight.copy_(plain->norm->weight), timm_like->fc_norm->bias.copy_(plain->norm->bias);
  plain->eval(), timm_like->eval();
  auto x = torch::randn({3, 1, 8, 8});
  // Same blocks: the tokens before the final norm agree; then the norm comes after the mean.
  auto tokens = timm_like->forward_features(x);  // (B, N, d), no final norm
  auto expected = plain->head(torch::layer_norm(tokens.mean(1), {16}, plain->norm->weight, plain->norm->bias, 1e-6));
  EXPECT_TRUE(torch::allclose(timm_like->forward(x), expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(plain->norm(tokens), plain->forward_features(x), 1e-5, 1e-6));
}

// timm's average pooling with a class token present: the mean skips the class token.
TEST(ViT, MeanPoolWithClassTokenAveragesPatchesOnly) {
  ModelConfig c;
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.in_chans = 1, c.pool = "mean";
  c.mean = {0}, c.std = {1};
  c.class_token = true;
  ViT m(c);
  ASSERT_TRUE(m->cls_token.defined());
  EXPECT_EQ(c.num_tokens(), 5);
  m->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 1, 8, 8});
  auto t = m->forward_features(x);  // (B, 5, d)
  EXPECT_TRUE(torch::allclose(m->forward(x), m->head(t.narrow(1, 1, 4).mean(1)), 1e-5, 1e-6));
  c.pool = "cls", c.class_token = false;
  EXPECT_NE(error_of([&] { c.validate(); }).find("model.class_token"), std::string::npos);
}

TEST(ViT, SinCosTableEncodesRowAndColumn) {
  auto t = sincos_2d(4, 16, /*prefix=*/1);  // (1, 17, 16)
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{1, 17, 16}));
  EXPECT_TRUE(torch::equal(t[0][0], torch::zeros({16})));
  // token (r, c) sits at 1 + 4r + c: the first half depends on the column only, the second on the row.
  EXPECT_TRUE(torch::equal(t[0][1 + 4 * 0 + 2].slice(0, 0, 8), t[0][1 + 4 * 3 + 2].slice(0, 0, 8)));
  EXPECT_TRUE(torch::equal(t[0][1 + 4 * 1 + 0].slice(0, 8), t[0][1 + 4 * 1 + 3].slice(0, 8)));
  EXPECT_FALSE(torch::equal(t[0][1].slice(0, 0, 8), t[0][2].slice(0, 0, 8)));
  ModelConfig c;
  c.pos = "sincos";
  ViT m(c);
  EXPECT_EQ(m->named_buffers().size(), 1u);  // not trained, but saved with the weights
}

TEST(ViT, DropPathIsStochasticInTrainingOnly) {
  ModelConfig c;
  c.dim = 32, c.depth = 2, c.heads = 2, c.drop_path = 0.5;
  ViT m(c);
  auto x = torch::randn({4, 1, 28, 28});
  m->train();
  torch::manual_seed(1);
  auto a = m->forward(x);
  torch::manual_seed(2);
  auto b = m->forward(x);
  EXPECT_FALSE(torch::allclose(a, b));
  m->eval();
  EXPECT_TRUE(torch::equal(m->forward(x), m->forward(x)));
}

TEST(Accounting, FlopsFollowTheClosedForm) {
  ModelConfig c;  // d 128, depth 6, patch 4 on 28x28 with a class token: 50 tokens
  ViT m(c);
  const double n = 50, d = 128;
  const double per_block = n * (2 * d * 3 * d + 2 * 2 * n * d + 2 * d * d) + n * 2 * 2 * d * 4 * d;
  const double expected = 2.0 * 49 * 16 * d + 6 * per_block + 2 * d * 10;
  EXPECT_DOUBLE_EQ(flops_per_image(m), expected);
  EXPECT_EQ(kv_floats_per_token(m), 6 * 2 * 128);
  // A SwiGLU MLP: fc1 to 4d, fc2 from 2d; no classifier: no head product.
  c.mlp = "swiglu", c.num_classes = 0;
  ViT g(c);
  const double gated_block = per_block - n * 2 * 2 * d * 4 * d + n * 2 * d * (4 * d + 2 * d);
  EXPECT_DOUBLE_EQ(flops_per_image(g), 2.0 * 49 * 16 * d + 6 * gated_block);
}

// bf16 autocast (train.precision): matrix products inside the guard run in bf16 and the guard
// restores float32 after; the model's output stays within bf16 rounding of float32's.
TEST(ViT, Bf16AutocastRunsProductsInBf16AndRestores) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({8, 16}), b = torch::randn({16, 4});
  {
    compat::AutocastBf16 autocast(torch::kCPU, true);
    EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kBFloat16);
    {
      compat::AutocastBf16 off(torch::kCPU, false);  // a disabled guard changes nothing
      EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kBFloat16);
    }
  }
  EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat);

  ModelConfig c;
  c.image_size = 16, c.dim = 64, c.depth = 2, c.heads = 4;
  torch::manual_seed(3);
  ViT model(c);
  model->eval();
  auto x = torch::randn({4, 1, 16, 16});
  auto ref = model->forward(x);
  torch::Tensor low;
  {
    compat::AutocastBf16 autocast(torch::kCPU, true);
    low = model->forward(x).to(torch::kFloat);
  }
  const double rel = ((low - ref).norm() / ref.norm()).item<double>();
  EXPECT_GT(rel, 0.0);   // it did run in lower precision
  EXPECT_LT(rel, 3e-2);  // bf16 has an 8-bit mantissa
  EXPECT_TRUE(uses_bf16("auto", torch::Device(torch::kCUDA, 0)));
  EXPECT_FALSE(uses_bf16("auto", torch::Device(torch::kCPU)));
  EXPECT_TRUE(uses_bf16("bf16", torch::Device(torch::kCPU)));
  EXPECT_EQ(math_precision("fp32", true, torch::Device(torch::kCUDA, 0)), "tf32");
  EXPECT_EQ(math_precision("fp32", true, torch::Device(torch::kCPU)), "fp32");
}

// |a - b| / |b| in float64, for comparing a fused CUDA path with LibTorch's.
static double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).norm() / b.to(torch::kDouble).norm()).item<double>();
}

// The fused residual add + LayerNorm (kernels/add_layer_norm.cu) against LibTorch's two
// operations, forward and backward: in float32 to rounding, and with a bf16 branch and a bf16
// output under autocast to one bf16 rounding step; also with y a (1, N, D) table broadcast over
// the batch (the position embedding). Unsupported widths take LibTorch's path.
TEST(AddNorm, FusedKernelEqualsLibTorch) {
  if (!fused_add_norm_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  enum Mode { kFloat32, kBf16, kBroadcast };
  for (int64_t D : {192, 384, 100}) {
    for (Mode mode : {kFloat32, kBf16, kBroadcast}) {
      const bool autocast_on = mode != kFloat32;
      auto norm = torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(1e-6));
      norm->to(torch::kCUDA);
      {
        torch::NoGradGuard no_grad;
        norm->weight.normal_(1.0, 0.2), norm->bias.normal_(0.0, 0.2);
      }
      const auto f32 = torch::TensorOptions().device(torch::kCUDA);
      const auto x0 = torch::randn({3, 50, D}, f32) * 2 + 0.5;
      const auto y0 = mode == kBf16 ? torch::randn({3, 50, D}, f32).to(torch::kBFloat16)
                                    : torch::randn({mode == kBroadcast ? 1 : 3, 50, D}, f32);
      const auto r_s = torch::randn({3, 50, D}, f32), r_out = torch::randn({3, 50, D}, f32);
      std::vector<torch::Tensor> grads[2], outs[2];
      torch::ScalarType native = torch::kFloat;
      for (int fused = 0; fused < 2; ++fused) {
        auto x = x0.clone().requires_grad_(true), y = y0.clone().requires_grad_(true);
        for (auto& p : norm->parameters()) p.mutable_grad() = torch::Tensor();
        torch::Tensor s, out;
        {
          compat::AutocastBf16 autocast(c10::DeviceType::CUDA, autocast_on);
          std::tie(s, out) = add_norm(x, y, norm, /*feeds_linear=*/true, fused == 1);
        }
        if (fused == 1) native = out.scalar_type();
        if (autocast_on) out = out.to(torch::kBFloat16);  // what the Linear after it casts it to
        ((s * r_s).sum() + (out.to(torch::kFloat) * r_out).sum()).backward();
        outs[fused] = {s, out};
        grads[fused] = {x.grad(), y.grad(), norm->weight.grad(), norm->bias.grad()};
      }
      const std::string at = "D " + std::to_string(D) + (mode == kFloat32 ? " float32" : mode == kBf16 ? " bf16" : " broadcast");
      EXPECT_EQ(native, autocast_on && D != 100 ? torch::kBFloat16 : torch::kFloat) << at;  // 100: LibTorch's path
      EXPECT_TRUE(torch::equal(outs[1][0], outs[0][0])) << at;  // the add: the same float32 sum
      EXPECT_LT(rel(outs[1][1], outs[0][1]), autocast_on ? 4e-3 : 1e-6) << at;
      EXPECT_EQ(grads[1][1].sizes(), y0.sizes()) << at;
      const char* names[] = {"x", "y", "weight", "bias"};
      for (int i = 0; i < 4; ++i)
        EXPECT_LT(rel(grads[1][i], grads[0][i]), autocast_on ? 1e-2 : 1e-5) << at << " grad " << names[i];
    }
  }
  // A fixed table (the sin-cos positions, no gradient wanted) gets none; x's still flows.
  auto norm = torch::nn::LayerNorm(torch::nn::LayerNormOptions({192}));
  norm->to(torch::kCUDA);
  auto x = torch::randn({3, 50, 192}, torch::TensorOptions().device(torch::kCUDA)).requires_grad_(true);
  const auto table = torch::randn({1, 50, 192}, torch::TensorOptions().device(torch::kCUDA));
  torch::Tensor out;
  {
    compat::AutocastBf16 autocast(c10::DeviceType::CUDA, true);
    out = add_norm(x, table, norm, /*feeds_linear=*/true).second;
  }
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);  // the fused kernel ran
  (out.to(torch::kFloat) * out.to(torch::kFloat)).sum().backward();
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
}

// The fused backward sums the LayerNorm weight gradients in a fixed order: two runs give the
// same bits (8 warps per block adding into shared memory with atomics did not).
TEST(AddNorm, FusedBackwardRepeatsBitForBit) {
  if (!fused_add_norm_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  auto norm = torch::nn::LayerNorm(torch::nn::LayerNormOptions({384}).eps(1e-6));
  norm->to(torch::kCUDA);
  const auto f32 = torch::TensorOptions().device(torch::kCUDA);
  const auto x0 = torch::randn({64, 197, 384}, f32), y0 = torch::randn({64, 197, 384}, f32).to(torch::kBFloat16);
  const auto r = torch::randn({64, 197, 384}, f32);
  std::vector<torch::Tensor> grads[2];
  for (int run = 0; run < 2; ++run) {
    for (auto& p : norm->parameters()) p.mutable_grad() = torch::Tensor();
    auto x = x0.clone().requires_grad_(true), y = y0.clone().requires_grad_(true);
    torch::Tensor out;
    {
      compat::AutocastBf16 autocast(c10::DeviceType::CUDA, true);
      out = add_norm(x, y, norm, /*feeds_linear=*/true).second;
    }
    ASSERT_EQ(out.scalar_type(), torch::kBFloat16);  // the fused kernel ran
    (out.to(torch::kFloat) * r).sum().backward();
    grads[run] = {x.grad(), y.grad(), norm->weight.grad(), norm->bias.grad()};
  }
  const char* names[] = {"x", "y", "weight", "bias"};
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(grads[0][i], grads[1][i])) << names[i];
}

// The bf16 training path of Linear (layers/linear.cpp: the bias gradient from kernels/bias_grad.cu,
// inside the GELU backward for the MLP's first layer) against LibTorch's autograd: the same
// output, and gradients to one bf16 rounding step. Widths that are not a multiple of 8 take
// LibTorch's path.
TEST(Linear, FusedBiasGradEqualsLibTorch) {
  if (!fused_bias_grad_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  const auto f32 = torch::TensorOptions().device(torch::kCUDA);
  for (int64_t N : {384, 1536, 100}) {
    for (Gelu gelu : {Gelu::kNone, Gelu::kExact, Gelu::kTanh}) {
      const int64_t K = 192;
      const auto x0 = torch::randn({8, 197, K}, f32), w0 = torch::randn({N, K}, f32) * 0.1,
                 b0 = torch::randn({N}, f32), r = torch::randn({8, 197, N}, f32);
      std::vector<torch::Tensor> grads[2], outs(2);
      std::string node;
      for (int fused = 0; fused < 2; ++fused) {
        auto x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true),
             b = b0.clone().requires_grad_(true);
        {
          compat::AutocastBf16 autocast(c10::DeviceType::CUDA, true);
          outs[fused] = linear(x, w, b, gelu, fused == 1);
        }
        if (fused == 1) node = outs[fused].grad_fn()->name();
        (outs[fused].to(torch::kFloat) * r).sum().backward();
        grads[fused] = {x.grad(), w.grad(), b.grad()};
      }
      const std::string at =
          "N " + std::to_string(N) + (gelu == Gelu::kExact ? " gelu" : gelu == Gelu::kTanh ? " gelu_tanh" : "");
      EXPECT_EQ(node.find("LinearBiasGrad") != std::string::npos, N % 8 == 0) << at << ": " << node;
      EXPECT_TRUE(torch::equal(outs[1], outs[0])) << at;  // the same product and GELU
      const char* names[] = {"x", "weight", "bias"};
      for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(grads[1][i].scalar_type(), torch::kFloat) << at << " grad " << names[i];
        EXPECT_LT(rel(grads[1][i], grads[0][i]), 1e-2) << at << " grad " << names[i];
      }
    }
  }
}

// LentBf16Weights: inside its scope a float32 Linear holds its weight and bias cast to bf16 and
// reads them; the output and every gradient equal the run without the copies bit for bit, also
// at a width the fused backward does not take (where training must not read the copies, or the
// parameters would get no gradient). Without a gradient the copies are read at every width.
TEST(Linear, LentBf16WeightsChangeNoResult) {
  if (!fused_bias_grad_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (int64_t N : {384, 100}) {
    Linear lin(192, N);
    lin->to(torch::kCUDA);
    const auto x0 = torch::randn({8, 197, 192}, cuda), r = torch::randn({8, 197, N}, cuda);
    const std::string at = "N " + std::to_string(N);
    torch::Tensor outs[2];
    std::vector<torch::Tensor> grads[2];
    for (int lend = 0; lend < 2; ++lend) {
      lin->zero_grad();
      auto x = x0.clone().requires_grad_(true);
      {
        compat::AutocastBf16 autocast(c10::DeviceType::CUDA, true);
        std::optional<LentBf16Weights> lent;
        if (lend) {
          lent.emplace(*lin, x);
          ASSERT_TRUE(lin->lent.weight.defined() && lin->lent.bias.defined()) << at;
          EXPECT_TRUE(torch::equal(lin->lent.weight, lin->weight.to(torch::kBFloat16))) << at;
          EXPECT_TRUE(torch::equal(lin->lent.bias, lin->bias.to(torch::kBFloat16))) << at;
        }
        outs[lend] = lin->forward_gelu(x);
      }
      EXPECT_FALSE(lin->lent.weight.defined()) << at << ": the copies outlive the scope";
      (outs[lend].to(torch::kFloat) * r).sum().backward();
      grads[lend] = {x.grad(), lin->weight.grad(), lin->bias.grad()};
    }
    EXPECT_TRUE(torch::equal(outs[1], outs[0])) << at;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(grads[1][i].defined()) << at << " grad " << i;
      EXPECT_TRUE(torch::equal(grads[1][i], grads[0][i])) << at << " grad " << i;
    }
    torch::NoGradGuard no_grad;
    compat::AutocastBf16 autocast(c10::DeviceType::CUDA, true);
    LentBf16Weights lent(*lin, x0);
    lin->lent.weight.zero_();  // what the product reads shows in its output: the bias alone
    EXPECT_TRUE(torch::equal(lin->forward(x0), lin->lent.bias.expand({8, 197, N})))
        << at << ": inference did not read the lent weight";
  }
}
