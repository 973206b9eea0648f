// Rank analysis and compression of MHA layers (DESIGN section 7), in float64: the attention
// tensors are the layer's bilinear forms, full-rank HOSVD reproduces the layer, truncation
// errors equal the discarded singular-value energy, and a converted model keeps its outputs.
#include <gtest/gtest.h>

#include <cmath>

#include "vitlab/analysis/compress.h"
#include "vitlab/analysis/ranks.h"
#include "vitlab/attention/registry.h"

using namespace vitlab;

namespace {

template <typename T>
std::shared_ptr<T> make(const AttentionConfig& cfg, const AttentionDims& dims) {
  auto p = std::dynamic_pointer_cast<T>(make_attention(cfg, dims));
  p->to(torch::kDouble);
  return p;
}

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

// A float64 MHA layer with random biases, the query bias zeroed: the one bias conversions drop.
std::shared_ptr<MhaImpl> mha_with_kv_biases(const AttentionDims& dims) {
  auto m = make<MhaImpl>({"mha", json::object()}, dims);
  torch::NoGradGuard no_grad;
  m->qkv->weight.normal_(0, 0.3);
  m->proj->weight.normal_(0, 0.3);
  m->qkv->bias.normal_(0, 0.5);
  m->qkv->bias.narrow(0, 0, dims.heads * dims.head_dim).zero_();
  m->proj->bias.normal_(0, 0.5);
  return m;
}

}  // namespace

TEST(Ranks, TensorsAreThePerHeadBilinearForms) {
  const AttentionDims dims{8, 2, 3, false};
  auto m = make<MhaImpl>({"mha", json::object()}, dims);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 5, 8}, torch::kDouble);
  const AttentionTensors T = attention_tensors(*m);
  ASSERT_EQ(T.qk.sizes(), torch::IntArrayRef({2, 8, 8}));
  auto scores = m->scores(x, nullptr);  // (1, h, N, N)
  auto y = m->proj->bias.expand({5, 8}).clone();
  for (int64_t i = 0; i < 2; ++i) {
    auto s = x[0].matmul(T.qk[i]).matmul(x[0].t()) / std::sqrt(3.0);
    EXPECT_LE(max_rel(scores[0][i], s), 1e-12) << "head " << i;
    y += torch::softmax(s, -1).matmul(x[0]).matmul(T.ov[i]);  // A_i x T_ov[i]
  }
  EXPECT_LE(max_rel(m->forward(x, nullptr)[0], y), 1e-12);
}

TEST(Ranks, SpectrumMetrics) {
  auto s = torch::tensor({4.0, 3.0}, torch::kDouble);  // energies 16/25, 9/25
  EXPECT_EQ(energy_rank(s, 0.6), 1);
  EXPECT_EQ(energy_rank(s, 0.9), 2);
  EXPECT_NEAR(effective_rank(torch::ones({4}, torch::kDouble)), 4.0, 1e-12);
  EXPECT_NEAR(effective_rank(torch::tensor({1.0, 0.0, 0.0}, torch::kDouble)), 1.0, 1e-12);
  const json j = spectrum_json(torch::tensor({2.0, 1.0, 0.0}, torch::kDouble));
  EXPECT_EQ(j["rank_999"], 2);
  EXPECT_EQ(j["size"], 3);
}

TEST(Ranks, LowRankQueriesShowInTheQueryMode) {
  ModelConfig c;
  c.dim = 12, c.depth = 2, c.heads = 3, c.image_size = 8, c.patch_size = 4, c.in_chans = 1, c.mean = {0}, c.std = {1};
  ViT model(c);
  auto* m = model->blocks[1]->as<Block>()->attn->as<MhaImpl>();
  {
    torch::NoGradGuard no_grad;  // every query row in the span of two input directions
    auto basis = torch::randn({2, 12});
    m->qkv->weight.narrow(0, 0, 12).copy_(torch::randn({12, 2}).matmul(basis));
  }
  const json r = rank_report(model);
  ASSERT_EQ(r["layers"].size(), 2u);
  EXPECT_EQ(r["layers"][1]["qk"]["query"]["rank_999"], 2);
  EXPECT_GT(r["layers"][0]["qk"]["query"]["rank_999"].get<int>(), 2);  // random: no such limit
  EXPECT_GT(r["layers"][0]["qk"]["query"]["singular_values"][11].get<double>(), 1e-9);
  EXPECT_EQ(r["layers"][1]["qk"]["head"]["size"], 3);
  EXPECT_LE(r["layers"][1]["ov"]["output"]["rank_999"].get<int>(), 12);
}

TEST(Compress, FullRankHosvdReproducesTheLayer) {
  const AttentionDims dims{6, 3, 2, true};
  auto m = mha_with_kv_biases(dims);
  auto t = make<TuckerImpl>({"tucker", json::object()}, dims);  // full ranks (h, d, d)
  const json e = tucker_compress(*t, *m);
  EXPECT_LE(e["qk_error"].get<double>(), 1e-12);
  EXPECT_EQ(e["dropped_query_bias"], 0.0);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 7, 6}, torch::kDouble);
  EXPECT_LE(max_rel(t->forward(x, nullptr), m->forward(x, nullptr)), 1e-10);  // k bias drops, v bias folds
}

TEST(Compress, OneTruncatedModeLosesExactlyItsDiscardedEnergy) {
  auto T = torch::randn({3, 6, 5}, torch::kDouble);
  for (int mode = 0; mode < 3; ++mode) {
    std::array<int64_t, 3> r{3, 6, 5};
    r[mode] -= 2;
    auto s = at::linalg_svdvals(unfold(T, mode));
    const double discarded = s.narrow(0, r[mode], s.size(0) - r[mode]).pow(2).sum().item<double>();
    const double err = (reconstruct(hosvd(T, r)) - T).pow(2).sum().item<double>();
    EXPECT_NEAR(err, discarded, 1e-10 * T.pow(2).sum().item<double>()) << "mode " << mode;
  }
  // All modes truncated: HOOI refines HOSVD and never does worse.
  const double e0 = (reconstruct(hosvd(T, {2, 3, 3})) - T).norm().item<double>();
  const double e2 = (reconstruct(hosvd(T, {2, 3, 3}, 2)) - T).norm().item<double>();
  EXPECT_LE(e2, e0 * (1 + 1e-12));
}

TEST(Compress, MlaErrorIsTheDiscardedEnergyOfTheKeyValueMap) {
  const AttentionDims dims{8, 2, 4, true};
  auto m = mha_with_kv_biases(dims);
  auto l = make<MlaImpl>({"mla", json{{"kv_rank", 5}, {"q_rank", 0}}}, dims);
  const json e = mla_compress(*l, *m);
  auto W = m->qkv->weight.chunk(3, 0);
  auto M = torch::cat({W[1], W[2]}).t();  // (d, 2 h d_h)
  auto s = at::linalg_svdvals(M);
  const double discarded = s.narrow(0, 5, s.size(0) - 5).pow(2).sum().item<double>();
  EXPECT_NEAR(std::pow(e["kv_error"].get<double>() * M.norm().item<double>(), 2), discarded, 1e-10);
  // At full rank the layer is reproduced (k bias drops, v bias folds).
  auto full = make<MlaImpl>({"mla", json{{"kv_rank", 8}, {"q_rank", 0}}}, dims);
  mla_compress(*full, *m);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 5, 8}, torch::kDouble);
  EXPECT_LE(max_rel(full->forward(x, nullptr), m->forward(x, nullptr)), 1e-10);
}

TEST(Compress, GqaOfEqualHeadsWithinGroupsIsExact) {
  const AttentionDims dims{8, 4, 2, true};
  auto m = mha_with_kv_biases(dims);
  {
    torch::NoGradGuard no_grad;  // heads 0,1 and 2,3 share keys and values
    for (int64_t part : {1, 2})
      for (int64_t pair : {0, 2}) {
        const int64_t base = part * 8 + pair * 2;
        m->qkv->weight.narrow(0, base + 2, 2).copy_(m->qkv->weight.narrow(0, base, 2));
        m->qkv->bias.narrow(0, base + 2, 2).copy_(m->qkv->bias.narrow(0, base, 2));
      }
  }
  auto g = make<GqaImpl>({"gqa", json{{"kv_heads", 2}}}, dims);
  const json e = gqa_compress(*g, *m);
  EXPECT_LE(e["qk_error"].get<double>(), 1e-12);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 5, 8}, torch::kDouble);
  EXPECT_LE(max_rel(g->forward(x, nullptr), m->forward(x, nullptr)), 1e-12);
}

TEST(Compress, ConvertedModelKeepsItsOutputsAndCountsItsParameters) {
  ModelConfig c;
  c.dim = 16, c.depth = 2, c.heads = 4, c.image_size = 8, c.patch_size = 4, c.in_chans = 1, c.mean = {0}, c.std = {1};
  c.qkv_bias = false;
  ViT src(c);
  src->eval();
  json report;
  ViT dst = compress_model(src, {"tucker", json::object()}, 0, &report);
  dst->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({3, 1, 8, 8});
  EXPECT_LE(max_rel(dst->forward(x), src->forward(x)), 1e-4);  // float32 weights
  EXPECT_EQ(report["layers"].size(), 2u);
  EXPECT_EQ(report["attention_params"]["converted"].get<int64_t>(),
            2 * dst->blocks[0]->as<Block>()->attn->parameter_count());
  const AttentionConfig energy = attention_for_energy(src, "mla", 0.5);
  EXPECT_LT(energy.options["kv_rank"].get<int>(), 16);
  ViT small = compress_model(src, energy, 0, &report);
  EXPECT_GT(report["layers"][0]["kv_error"].get<double>(), 0.0);
}
