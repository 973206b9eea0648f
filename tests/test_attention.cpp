#include <gtest/gtest.h>

#include <cmath>

#include "vitlab/attention/mha.h"
#include "vitlab/attention/registry.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/compat.h"
#include "vitlab/error.h"

using namespace vitlab;

namespace {

// Hand-written MHA in float64: per batch element and head, explicit softmax.
torch::Tensor reference_mha(const torch::Tensor& x, MhaImpl& m) {
  const int64_t B = x.size(0), N = x.size(1), h = m.dims.heads, dh = m.dims.head_dim, inner = h * dh;
  auto W = m.qkv->weight;  // (3 inner, d)
  auto bias = m.qkv->bias.defined() ? m.qkv->bias : torch::zeros({3 * inner}, x.options());
  auto out = torch::zeros({B, N, inner}, x.options());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < h; ++i) {
      auto rows = [&](int64_t which) { return W.slice(0, which * inner + i * dh, which * inner + (i + 1) * dh); };
      auto bs = [&](int64_t which) { return bias.slice(0, which * inner + i * dh, which * inner + (i + 1) * dh); };
      auto q = x[b].matmul(rows(0).t()) + bs(0);  // (N, dh)
      auto k = x[b].matmul(rows(1).t()) + bs(1);
      auto v = x[b].matmul(rows(2).t()) + bs(2);
      for (int64_t r = 0; r < N; ++r) {
        std::vector<double> s(N);
        double mx = -1e300, z = 0;
        for (int64_t c = 0; c < N; ++c) {
          s[c] = (q[r] * k[c]).sum().item<double>() / std::sqrt(double(dh));
          mx = std::max(mx, s[c]);
        }
        for (auto& e : s) z += (e = std::exp(e - mx));
        auto acc = torch::zeros({dh}, x.options());
        for (int64_t c = 0; c < N; ++c) acc += v[c] * (s[c] / z);
        out[b][r].slice(0, i * dh, (i + 1) * dh).copy_(acc);
      }
    }
  return out.matmul(m.proj->weight.t()) + m.proj->bias;
}

}  // namespace

TEST(Mha, MatchesHandWrittenFloat64Reference) {
  for (bool bias : {true, false}) {
    auto m = std::make_shared<MhaImpl>(AttentionDims{12, 3, 4, bias});
    m->to(torch::kDouble);
    torch::NoGradGuard no_grad;
    auto x = torch::randn({2, 5, 12}, torch::kDouble);
    auto y = m->forward(x);
    auto ref = reference_mha(x, *m);
    EXPECT_LE(((y - ref).norm() / ref.norm()).item<double>(), 1e-12);
  }
}

TEST(Mha, HeadDimIndependentOfWidth) {
  auto m = std::make_shared<MhaImpl>(AttentionDims{10, 2, 7, true});
  m->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 4, 10}, torch::kDouble);
  EXPECT_LE(((m->forward(x) - reference_mha(x, *m)).norm()).item<double>(), 1e-12);
  int64_t numel = 0;
  for (const auto& p : m->parameters()) numel += p.numel();
  EXPECT_EQ(m->parameter_count(), numel);
  EXPECT_EQ(numel, 4 * 10 * 14 + 3 * 14 + 10);
}

TEST(Sdpa, ComposedEqualsSoftmaxDefinition) {
  auto q = torch::randn({2, 3, 5, 4}, torch::kDouble), k = torch::randn({2, 3, 6, 4}, torch::kDouble);
  auto v = torch::randn({2, 3, 6, 7}, torch::kDouble);
  auto p = torch::exp(q.matmul(k.transpose(-2, -1)) * 0.3);
  auto expected = (p / p.sum(-1, true)).matmul(v);
  EXPECT_TRUE(torch::allclose(sdpa_composed(q, k, v, 0.3), expected, 1e-12, 1e-12));
}

TEST(Sdpa, FusedEqualsComposed) {
  if (!compat::kHasFusedSdpa) GTEST_SKIP() << "LibTorch " << TORCH_VERSION << " has no fused SDPA (needs 2.x)";
  auto q = torch::randn({2, 3, 5, 8}), k = torch::randn({2, 3, 9, 8}), v = torch::randn({2, 3, 9, 8});
  EXPECT_TRUE(torch::allclose(sdpa(q, k, v, 0.25), sdpa_composed(q, k, v, 0.25), 1e-5, 1e-5));
}

// Key/value head j serves query heads 2j and 2j+1 when 2 key/value heads serve 4 query heads.
TEST(Sdpa, GroupedKeysServeConsecutiveQueryHeads) {
  auto q = torch::randn({2, 4, 5, 8}, torch::kDouble), k = torch::randn({2, 2, 6, 8}, torch::kDouble);
  auto v = torch::randn({2, 2, 6, 3}, torch::kDouble);
  auto o = sdpa_composed(q, k, v, 0.3);  // (2, 4, 5, 3)
  ASSERT_EQ(o.sizes(), torch::IntArrayRef({2, 4, 5, 3}));
  for (int64_t i = 0; i < 4; ++i) {
    auto one = sdpa_composed(q.narrow(1, i, 1), k.narrow(1, i / 2, 1), v.narrow(1, i / 2, 1), 0.3);
    EXPECT_TRUE(torch::allclose(o.narrow(1, i, 1), one, 1e-12, 1e-12)) << "query head " << i;
  }
  EXPECT_TRUE(torch::allclose(sdpa(q, k, v, 0.3), o, 1e-12, 1e-12));
  EXPECT_THROW(sdpa_composed(q, k.narrow(1, 0, 1).expand({2, 3, 6, 8}), v, 0.3), c10::Error);
}

// On CUDA in bf16 the flash kernel takes grouped keys/values itself (LibTorch >= 2.5).
TEST(Sdpa, GroupedFlashEqualsWidenedOnCuda) {
  if (!torch::cuda::is_available() || !compat::kHasSdpaGqa) GTEST_SKIP() << "needs CUDA and LibTorch >= 2.5";
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  auto q = torch::randn({3, 6, 50, 64}, opts), k = torch::randn({3, 2, 50, 64}, opts), v = torch::randn({3, 2, 50, 64}, opts);
  auto expected = sdpa_composed(q.to(torch::kFloat), k.to(torch::kFloat), v.to(torch::kFloat), 0.125);
  EXPECT_LT((sdpa(q, k, v, 0.125).to(torch::kFloat) - expected).abs().max().item<float>(), 2e-2);
}

TEST(Registry, UnknownNamesAndOptionsAreErrors) {
  AttentionDims dims{8, 2, 4, true};
  EXPECT_NE(make_attention({"mha", json::object()}, dims), nullptr);
  try {
    make_attention({"flash9", json::object()}, dims);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "model.attention.name: unknown attention 'flash9' (known: btt, gqa, mha, mla, mlr, mqa, tpa, tucker)");
  }
  try {
    make_attention({"mha", json{{"kv_heads", 2}}}, dims);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.attention.kv_heads: unknown option for attention 'mha'"), std::string::npos);
  }
}
