// The plugin's own tests, built against the installed vitlab: exact parameter count, MHA as the
// identity-mixing case in float64, gradients against central differences, and a ViT built by
// name through vitlab's registry.
#include <gtest/gtest.h>
#include <vitlab/attention/mha.h>
#include <vitlab/attention/registry.h>
#include <vitlab/model/vit.h>

#include <algorithm>

#include "talking_heads.h"

namespace {

using talking_heads::TalkingHeadsImpl;

const vitlab::AttentionDims kDims{24, 4, 6, true};

std::shared_ptr<TalkingHeadsImpl> make(const vitlab::AttentionDims& dims = kDims) {
  auto a = std::dynamic_pointer_cast<TalkingHeadsImpl>(vitlab::make_attention({"talking_heads", vitlab::json::object()}, dims));
  EXPECT_NE(a, nullptr);
  return a;
}

TEST(TalkingHeads, CountsEveryParameterExactly) {
  auto a = make();
  int64_t numel = 0;
  for (const auto& p : a->parameters()) numel += p.numel();
  EXPECT_EQ(a->parameter_count(), numel);
  EXPECT_EQ(a->parameter_count(), 4 * 24 * 24 + 3 * 24 + 24 + 2 * 4 * 4);  // MHA's + two h x h mixings
  auto unbiased = make({24, 4, 6, false});
  EXPECT_EQ(unbiased->parameter_count(), 4 * 24 * 24 + 24 + 2 * 4 * 4);
}

TEST(TalkingHeads, IdentityMixingIsMhaInFloat64) {
  torch::manual_seed(0);
  auto th = make();
  auto mha = std::dynamic_pointer_cast<vitlab::MhaImpl>(vitlab::make_attention({"mha", vitlab::json::object()}, kDims));
  th->to(torch::kFloat64);
  mha->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    mha->qkv->weight.copy_(th->qkv->weight);
    mha->qkv->bias.copy_(th->qkv->bias);
    mha->proj->weight.copy_(th->proj->weight);
    mha->proj->bias.copy_(th->proj->bias);
  }
  const auto x = torch::randn({2, 17, 24}, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(th->forward(x), mha->forward(x), 1e-12, 1e-12));
  // Mixing the heads changes the answer: the layer is not MHA in disguise.
  {
    torch::NoGradGuard no_grad;
    th->logits_mix.add_(0.3 * torch::randn({4, 4}, torch::kFloat64));
  }
  EXPECT_FALSE(torch::allclose(th->forward(x), mha->forward(x), 1e-6, 1e-6));
}

// d(sum(out * w)) / d(param) by backward against central differences, for every entry of both
// mixings and a few entries of the input.
TEST(TalkingHeads, GradientsMatchFiniteDifferences) {
  torch::manual_seed(1);
  auto th = make();
  th->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    th->logits_mix.add_(0.5 * torch::randn({4, 4}, torch::kFloat64));
    th->weights_mix.add_(0.5 * torch::randn({4, 4}, torch::kFloat64));
  }
  auto x = torch::randn({2, 5, 24}, torch::kFloat64).requires_grad_(true);
  const auto w = torch::randn({2, 5, 24}, torch::kFloat64);
  auto loss = [&] { return (th->forward(x) * w).sum(); };
  loss().backward();
  const double eps = 1e-6;
  auto check = [&](torch::Tensor t, const torch::Tensor& grad, int64_t count) {
    auto flat = t.view({-1});
    auto g = grad.reshape({-1});
    for (int64_t i = 0; i < count; ++i) {
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        const double keep = flat[i].item<double>();
        flat[i].fill_(keep + eps);
        plus = loss().item<double>();
        flat[i].fill_(keep - eps);
        minus = loss().item<double>();
        flat[i].fill_(keep);
      }
      EXPECT_NEAR(g[i].item<double>(), (plus - minus) / (2 * eps), 1e-6) << "entry " << i;
    }
  };
  check(th->logits_mix, th->logits_mix.grad().clone(), 16);
  check(th->weights_mix, th->weights_mix.grad().clone(), 16);
  check(x, x.grad().clone(), 12);
}

// Through vitlab's registry, as the apps build it: a whole ViT by name, whose accounting is exact.
TEST(TalkingHeads, AViTBuildsItByName) {
  vitlab::ModelConfig c;
  c.dim = 32, c.depth = 2, c.heads = 4, c.image_size = 28, c.patch_size = 7;
  c.attention = {"talking_heads", vitlab::json::object()};
  vitlab::ViT model(c);
  EXPECT_EQ(model->forward(torch::randn({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 10}));
  const auto names = vitlab::attention_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "talking_heads"), names.end());
  EXPECT_EQ(vitlab::attention_plugin("talking_heads"), "");  // linked into this program, not loaded
  const auto unknown = vitlab::json{{"flash9", 1}};
  EXPECT_THROW(vitlab::make_attention({"talking_heads", unknown}, kDims), std::exception);  // options are checked
}

}  // namespace
