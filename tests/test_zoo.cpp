// Equivalences between attention variants in float64 (DESIGN section 4): Tucker attention
// reproduces MHA, GQA, MQA and MLA from their weights; GQA with g = h is MHA.
#include <gtest/gtest.h>

#include "vitlab/analysis/convert.h"
#include "vitlab/analysis/match.h"
#include "vitlab/attention/registry.h"
#include "test_util.h"
#include "vitlab/error.h"
#include "vitlab/train/trainer.h"

using namespace vitlab;
using vitlab::test::TempDir;

namespace {

double rel_err(const torch::Tensor& a, const torch::Tensor& b) { return ((a - b).norm() / b.norm()).item<double>(); }

template <typename T>
std::shared_ptr<T> make(const AttentionConfig& cfg, const AttentionDims& dims) {
  auto p = std::dynamic_pointer_cast<T>(make_attention(cfg, dims));
  p->to(torch::kDouble);
  return p;
}

std::shared_ptr<TuckerImpl> tucker_with(const TuckerRanks& r, const AttentionDims& dims) {
  return make<TuckerImpl>({"tucker", json{{"ranks", r.to_json()}}}, dims);
}

int64_t numel(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

const AttentionDims kDims{24, 4, 6, /*qkv_bias=*/false};

}  // namespace

TEST(Zoo, GqaWithAllHeadsIsMha) {
  auto mha = make<MhaImpl>({"mha", json::object()}, {24, 4, 6, true});
  auto gqa = make<GqaImpl>({"gqa", json{{"kv_heads", 4}}}, {24, 4, 6, true});
  gqa_from(*gqa, *mha);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 7, 24}, torch::kDouble);
  EXPECT_LE(rel_err(gqa->forward(x), mha->forward(x)), 1e-12);
  EXPECT_EQ(gqa->parameter_count(), mha->parameter_count());
}

TEST(Zoo, MqaIsGqaWithOneGroup) {
  auto mqa = make<GqaImpl>({"mqa", json::object()}, kDims);
  auto gqa = make<GqaImpl>({"gqa", json{{"kv_heads", 1}}}, kDims);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < gqa->parameters().size(); ++i) gqa->parameters()[i].copy_(mqa->parameters()[i]);
  auto x = torch::randn({2, 5, 24}, torch::kDouble);
  EXPECT_TRUE(torch::equal(mqa->forward(x), gqa->forward(x)));
  EXPECT_EQ(mqa->kv_floats_per_token(), 2 * 6);
}

TEST(Zoo, TuckerReproducesMha) {
  auto mha = make<MhaImpl>({"mha", json::object()}, kDims);
  auto t = tucker_with(tucker_ranks_for(*mha), kDims);
  tucker_from(*t, *mha);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({3, 9, 24}, torch::kDouble);
  EXPECT_LE(rel_err(t->forward(x), mha->forward(x)), 1e-10);
}

TEST(Zoo, TuckerReproducesGqaAndMqa) {
  for (int64_t g : {1, 2, 4}) {
    auto gqa = make<GqaImpl>({"gqa", json{{"kv_heads", g}}}, kDims);
    auto t = tucker_with(tucker_ranks_for(*gqa), kDims);
    tucker_from(*t, *gqa);
    EXPECT_EQ(t->ranks.k, g * 6);  // the key factor is tied within groups: r_k = g d_h
    torch::NoGradGuard no_grad;
    auto x = torch::randn({2, 8, 24}, torch::kDouble);
    EXPECT_LE(rel_err(t->forward(x), gqa->forward(x)), 1e-10) << "g = " << g;
    EXPECT_EQ(t->kv_floats_per_token(), gqa->kv_floats_per_token());
  }
}

TEST(Zoo, TuckerReproducesMla) {
  for (int64_t q_rank : {0, 10}) {
    auto mla = make<MlaImpl>({"mla", json{{"kv_rank", 8}, {"q_rank", q_rank}}}, kDims);
    auto t = tucker_with(tucker_ranks_for(*mla), kDims);
    tucker_from(*t, *mla);
    torch::NoGradGuard no_grad;
    auto x = torch::randn({2, 8, 24}, torch::kDouble);
    EXPECT_LE(rel_err(t->forward(x), mla->forward(x)), 1e-10) << "q_rank " << q_rank;
    EXPECT_EQ(t->kv_floats_per_token(), 16);  // r_k + r_v = 2 r_kv: the latent, cached twice
  }
}

TEST(Zoo, ParameterCountsAreExact) {
  const AttentionDims biased{24, 4, 6, true, false, 4, 1};
  std::vector<AttentionConfig> configs = {
      {"mha", json::object()},
      {"gqa", json{{"kv_heads", 2}}},
      {"mqa", json::object()},
      {"mla", json{{"kv_rank", 8}}},
      {"mla", json{{"kv_rank", 8}, {"q_rank", 12}}},
      {"tucker", json::object()},
      {"tucker", json{{"ranks", {{"head_qk", 2}, {"q", 5}, {"k", 6}, {"head_ov", 3}, {"v", 7}, {"o", 8}}}}},
      {"tpa", json{{"q_rank", 3}, {"k_rank", 2}, {"v_rank", 1}}},
      {"mlr", json{{"ranks", {3, 2, 1}}}},
      {"btt", json{{"m1", 4}, {"rank", 2}}}};
  for (const auto& c : configs) {
    auto a = make_attention(c, biased);
    EXPECT_EQ(a->parameter_count(), numel(*a)) << c.name << " " << c.options.dump();
  }
  AttentionDims roped = biased;
  roped.rope = true, roped.head_dim = 8, roped.grid = 4;
  auto mla_rope = make_attention({"mla", json{{"kv_rank", 8}, {"q_rank", 12}, {"rope_dim", 4}}}, roped);
  EXPECT_EQ(mla_rope->parameter_count(), numel(*mla_rope));
  EXPECT_EQ(mla_rope->parameter_count(),
            24 * 12 + 12 * 32 + 24 * 8 + 8 * 64 + 12 * 4 * 4 + 24 * 4 + 32 * 24 + 24);  // W_dq W_uq W_dkv W_ukv W_qr W_kr W_o b
  EXPECT_EQ(mla_rope->kv_floats_per_token(), 8 + 4);
  EXPECT_EQ(make_attention(configs[7], biased)->parameter_count(), 24 * (3 + 2 + 1) * (4 + 6) + 4 * 6 * 24 + 24);
  EXPECT_EQ(make_attention(configs[8], biased)->parameter_count(), make_attention(configs[0], biased)->parameter_count());
  // closed forms of DESIGN section 4 (d = 24, h = 4, d_h = 6, qkv biases on)
  EXPECT_EQ(make_attention(configs[1], biased)->parameter_count(), 2 * 24 * 24 + 2 * 24 * 12 + 24 + 24 + 24);
  auto t = make_attention(configs[6], biased);
  EXPECT_EQ(t->parameter_count(), 24 * (5 + 6 + 7 + 8) + 2 * 5 * 6 + 3 * 7 * 8 + 4 * (2 + 3) + 24);
}

TEST(Zoo, ImpossibleSettingsSayWhich) {
  auto error_of = [](const AttentionConfig& c) { return vitlab::test::error_of([&] { make_attention(c, kDims); }); };
  EXPECT_EQ(error_of({"gqa", json{{"kv_heads", 3}}}), "model.attention.kv_heads: 3 must divide model.heads=4");
  EXPECT_EQ(error_of({"gqa", json::object()}), "model.attention.kv_heads: required by attention 'gqa'");
  EXPECT_NE(error_of({"mla", json{{"kv_rank", 99}}}).find("model.attention.kv_rank: 99"), std::string::npos);
  EXPECT_EQ(error_of({"tucker", json{{"ranks", {{"head_qk", 5}}}}}),
            "model.attention.ranks.head_qk: 5 must be in [1, 4] (the head mode has size 4)");
  EXPECT_NE(error_of({"tucker", json{{"ranks", {{"x", 5}}}}}).find("ranks.x: unknown option"), std::string::npos);
  EXPECT_NE(error_of({"mqa", json{{"kv_heads", 1}}}).find("unknown option"), std::string::npos);
  EXPECT_EQ(error_of({"tpa", json{{"k_rank", 0}}}), "model.attention.k_rank: 0 must be at least 1");
  EXPECT_EQ(error_of({"btt", json{{"m1", 5}}}),
            "model.attention.m1: 5 does not divide model.dim=24 (BTT views x as an m1 x m2 matrix)");
  EXPECT_EQ(error_of({"mlr", json{{"ranks", {4, 4}}}}), "model.attention.ranks: 4+4=8 must sum to the head width d_h=6");
  EXPECT_EQ(error_of({"mlr", json{{"ranks", "4"}}}), "model.attention.ranks: expected a list of integers, got \"4\"");
  EXPECT_EQ(error_of({"mlr", json{{"layout", "spiral"}}}), "model.attention.layout: 'spiral' is not one of quadtree, sequence");
  EXPECT_EQ(error_of({"btt", json{{"projection", "sparse"}}}),
            "model.attention.projection: 'sparse' is not one of auto, dense, factored");
  const AttentionDims grid4{24, 4, 6, false, false, 4, 1};
  auto error_in = [](const AttentionConfig& c, const AttentionDims& d) {
    return vitlab::test::error_of([&] { make_attention(c, d); });
  };
  EXPECT_EQ(error_in({"mlr", json{{"ranks", {3, 1, 1, 1}}}}, grid4),
            "model.attention.ranks: 4 levels cut the grid side 4 patches into 8 parts; use at most 3 levels");
  AttentionDims roped = grid4;
  roped.rope = true;
  EXPECT_EQ(error_in({"mha", json::object()}, roped),
            "model.head_dim (d_h): 6 must be divisible by 4 for model.pos=rope (2-D RoPE turns pairs of channels per axis)");
  EXPECT_NE(error_in({"mla", json{{"kv_rank", 4}}}, roped).find("model.attention.rope_dim: mla needs rope_dim > 0"),
            std::string::npos);
  EXPECT_EQ(error_in({"mla", json{{"kv_rank", 4}, {"rope_dim", 4}}}, grid4),
            "model.attention.rope_dim: 4 needs model.pos=rope");
  EXPECT_NE(error_in({"mlr", json{{"ranks", {6}}}}, roped).find("model.pos: rope does not apply to attention 'mlr'"),
            std::string::npos);
}

TEST(Zoo, GradientsMatchFiniteDifferences) {
  const AttentionDims plain{12, 2, 6, true, false, 2, 0}, roped{16, 2, 8, true, true, 2, 0};
  Rope2d rope(2, 2, 0, 100.0);
  struct Case {
    AttentionConfig cfg;
    AttentionDims dims;
  };
  for (const Case& c : std::vector<Case>{
           {{"mha", json::object()}, plain},
           {{"gqa", json{{"kv_heads", 2}}}, plain},
           {{"mqa", json::object()}, plain},
           {{"mla", json{{"kv_rank", 8}, {"q_rank", 8}}}, plain},
           {{"tucker", json{{"ranks", {{"q", 8}, {"k", 7}, {"head_ov", 2}}}}}, plain},
           {{"tpa", json{{"q_rank", 2}, {"k_rank", 2}, {"v_rank", 1}}}, plain},
           {{"mlr", json{{"ranks", {4, 2}}, {"path", "onehot"}}}, plain},
           {{"mlr", json{{"ranks", {4, 2}}, {"path", "masked"}}}, plain},
           {{"btt", json{{"m1", 3}, {"rank", 2}}}, plain},
           {{"mha", json::object()}, roped},
           {{"mla", json{{"kv_rank", 6}, {"rope_dim", 4}}}, roped},
           {{"tucker", json{{"ranks", {{"k", 8}, {"q", 6}}}}}, roped},
           {{"tpa", json{{"q_rank", 2}, {"k_rank", 1}, {"v_rank", 1}}}, roped},
           {{"btt", json{{"m1", 4}}}, roped}}) {
    auto a = make_attention(c.cfg, c.dims);
    a->to(torch::kDouble);
    const int64_t d = c.dims.dim;
    auto x = torch::randn({2, 4, d}, torch::kDouble).requires_grad_(true);
    auto r = torch::randn({2, 4, d}, torch::kDouble);
    const Rope2d* rp = c.dims.rope ? &rope : nullptr;
    auto f = [&] { return (a->forward(x, rp) * r).sum(); };
    f().backward();
    std::vector<std::pair<std::string, torch::Tensor>> tensors{{"x", x}};
    for (const auto& p : a->named_parameters()) tensors.emplace_back(p.key(), p.value());
    const double eps = 1e-6;
    const std::string what = c.cfg.name + " " + c.cfg.options.dump() + (rp ? " rope" : "");
    for (auto& [name, t] : tensors) {
      auto grad = t.grad().view({-1});
      auto flat = t.detach().view({-1});
      for (int64_t i = 0; i < flat.numel(); i += 7) {
        torch::NoGradGuard no_grad;
        const double orig = flat[i].item<double>();
        flat[i] = orig + eps;
        const double up = f().item<double>();
        flat[i] = orig - eps;
        const double down = f().item<double>();
        flat[i] = orig;
        EXPECT_NEAR(grad[i].item<double>(), (up - down) / (2 * eps), 1e-6) << what << " " << name << "[" << i << "]";
      }
    }
  }
}

// Every variant trains a tiny ViT on the synthetic task clearly above chance (10%) in seconds.
class ZooTrains : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ZooTrains, TinyModelLearnsSynthetic) {
  RunConfig c;
  c.model.image_size = 16, c.model.patch_size = 4, c.model.dim = 32, c.model.depth = 2, c.model.heads = 4;
  json options = json::parse(GetParam().second);
  if (options.contains("pos")) c.model.pos = options["pos"], options.erase("pos");
  c.model.attention = {GetParam().first, options};
  c.data.spec = "synthetic";
  c.data.synthetic.image_size = 16, c.data.synthetic.train = 1600, c.data.synthetic.test = 400;
  c.data.val_size = 0;
  c.train.epochs = 6, c.train.batch_size = 32, c.train.lr = 3e-3, c.train.warmup_epochs = 0.5, c.train.threads = 1;
  c.train.augment.crop_padding = 0;
  TempDir dir;
  json r = train({c, dir / "run", false});
  EXPECT_GE(r["metrics"]["top1"].get<double>(), 60.0) << GetParam().first;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ZooTrains,
    ::testing::Values(std::pair<std::string, std::string>{"mha", "{}"},
                      std::pair<std::string, std::string>{"gqa", R"({"kv_heads": 2})"},
                      std::pair<std::string, std::string>{"mqa", "{}"},
                      std::pair<std::string, std::string>{"mla", R"({"kv_rank": 8, "q_rank": 16})"},
                      std::pair<std::string, std::string>{
                          "tucker", R"({"ranks": {"head_qk": 2, "q": 16, "k": 8, "head_ov": 2, "v": 8, "o": 16}})"},
                      std::pair<std::string, std::string>{"tpa", "{}"},
                      std::pair<std::string, std::string>{"mlr", R"({"ranks": [4, 4]})"},
                      std::pair<std::string, std::string>{"btt", "{}"},
                      std::pair<std::string, std::string>{
                          "tucker", R"({"pos": "rope", "ranks": {"q": 16, "k": 8, "v": 8, "o": 16}})"},
                      std::pair<std::string, std::string>{"mla", R"({"pos": "rope", "kv_rank": 8, "rope_dim": 4})"}),
    [](const auto& info) {
      return info.param.first + (info.param.second.find("rope") != std::string::npos ? "_rope" : "");
    });

TEST(Zoo, MatchParamsPicksTheNearestSize) {
  const AttentionDims dims{32, 4, 8, true};
  const int64_t mha = make_attention({"mha", json::object()}, dims)->parameter_count();
  for (const char* name : {"tucker", "mla"}) {
    MatchResult r = match_attention_params({name, json::object()}, dims, mha / 4);
    EXPECT_EQ(make_attention(r.attention, dims)->parameter_count(), r.params);
    // No other knob value lands nearer: check the neighbours.
    const int64_t knob = std::string(name) == "mla" ? r.attention.options["kv_rank"].get<int64_t>()
                                                     : r.attention.options["ranks"]["q"].get<int64_t>();
    for (int64_t other : {knob - 1, knob + 1}) {
      if (other < 1 || other > 32) continue;
      AttentionConfig c = r.attention;
      if (std::string(name) == "mla") c.options["kv_rank"] = other;
      else for (const char* k : {"q", "k", "v", "o"}) c.options["ranks"][k] = other;
      EXPECT_GE(std::llabs(make_attention(c, dims)->parameter_count() - mha / 4), std::llabs(r.params - mha / 4));
    }
  }
  EXPECT_EQ(match_attention_params({"gqa", json::object()}, dims, mha).attention.options["kv_heads"], 4);
  EXPECT_EQ(match_attention_params({"gqa", json::object()}, dims, 1).attention.options["kv_heads"], 1);
  EXPECT_THROW(match_attention_params({"mha", json::object()}, dims, 100), Error);
}
