// 2-D axial RoPE: the rotation itself, and the shift test for every variant that takes it —
// with RoPE on, a score depends on the two tokens' contents and their 2-D offset only.
#include <gtest/gtest.h>

#include "test_util.h"
#include "vitlab/attention/registry.h"
#include "vitlab/model/vit.h"

using namespace vitlab;

TEST(Rope, RotatesPatchesByTheirOffsetAndLeavesThePrefix) {
  Rope2d rope(3, 4, 1, 100.0);
  auto q = torch::randn({2, 13, 8}, torch::kDouble), k = torch::randn({2, 13, 8}, torch::kDouble);
  auto rq = rope.rotate(q), rk = rope.rotate(k);
  EXPECT_TRUE(torch::allclose(rq.norm(2, -1), q.norm(2, -1), 1e-12, 1e-12));  // a rotation
  EXPECT_TRUE(torch::equal(rq.select(1, 0), q.select(1, 0)));                  // the class token stays
  EXPECT_FALSE(torch::allclose(rq.select(1, 6), q.select(1, 6)));
  // The same pair of vectors at (0,1)->(1,3) and at (1,0)->(2,2): one offset, one score.
  auto at = [](int64_t r, int64_t c) { return 1 + r * 4 + c; };
  auto place = [&](const torch::Tensor& t, int64_t to, const torch::Tensor& v) { auto u = t.clone(); u.select(1, to).copy_(v); return u; };
  auto score = [&](int64_t i, int64_t j) {
    auto a = rope.rotate(place(q, i, q.select(1, 0))), b = rope.rotate(place(k, j, k.select(1, 0)));
    return (a.select(1, i) * b.select(1, j)).sum(-1);  // (2)
  };
  EXPECT_TRUE(torch::allclose(score(at(0, 1), at(1, 3)), score(at(1, 0), at(2, 2)), 1e-12, 1e-12));
  EXPECT_FALSE(torch::allclose(score(at(0, 1), at(1, 3)), score(at(0, 1), at(2, 3)), 1e-3, 1e-3));
  EXPECT_NE(vitlab::test::error_of([&] { rope.rotate(torch::randn({1, 13, 6})); }).find("divisible by 4"), std::string::npos);
}

// For each variant: contents a, b at patches p, p' score the same as at p + s, p' + s, and
// differently at another offset.
class RopeShift : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(RopeShift, ScoresDependOnTheOffsetOnly) {
  const int64_t g = 4, d = 16, N = 1 + g * g;
  const AttentionDims dims{d, 2, 8, true, /*rope=*/true, g, 1};
  auto a = make_attention({GetParam().first, json::parse(GetParam().second)}, dims);
  a->to(torch::kDouble);
  Rope2d rope(g, g, 1, 100.0);
  torch::NoGradGuard no_grad;
  auto at = [&](int64_t r, int64_t c) { return 1 + r * g + c; };
  auto content = torch::randn({2, d}, torch::kDouble);
  auto score = [&](int64_t i, int64_t j) {
    auto x = torch::randn({1, N, d}, torch::kDouble);  // the other tokens do not matter
    x[0][i].copy_(content[0]), x[0][j].copy_(content[1]);
    return a->scores(x, &rope).select(0, 0).select(1, i).select(1, j);  // (h)
  };
  auto base = score(at(0, 1), at(2, 0));
  EXPECT_TRUE(torch::allclose(base, score(at(1, 3), at(3, 2)), 1e-10, 1e-12)) << GetParam().first;
  EXPECT_TRUE(torch::allclose(base, score(at(1, 1), at(3, 0)), 1e-10, 1e-12)) << GetParam().first;
  // Relative only: at initialisation some variants' scores are small (TPA's are ~1e-4).
  EXPECT_FALSE(torch::allclose(base, score(at(0, 1), at(3, 0)), 1e-3, 0.0)) << GetParam().first;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, RopeShift,
    ::testing::Values(std::pair<std::string, std::string>{"mha", "{}"},
                      std::pair<std::string, std::string>{"gqa", R"({"kv_heads": 1})"},
                      std::pair<std::string, std::string>{"mqa", "{}"},
                      std::pair<std::string, std::string>{"mla", R"({"kv_rank": 6, "q_rank": 8, "rope_dim": 4})"},
                      std::pair<std::string, std::string>{"tucker", R"({"ranks": {"q": 12, "k": 8, "v": 6}})"},
                      std::pair<std::string, std::string>{"tpa", "{}"},
                      std::pair<std::string, std::string>{"btt", R"({"m1": 4})"}),
    [](const auto& info) { return info.param.first; });

TEST(Rope, VitWithRopeHasNoPositionTableAndUsesTheGrid) {
  ModelConfig c;
  c.image_size = 16, c.patch_size = 4, c.dim = 32, c.depth = 2, c.heads = 2, c.pos = "rope";
  ViT m(c);
  for (const auto& p : m->named_parameters()) EXPECT_EQ(p.key().find("pos_embed"), std::string::npos);
  ASSERT_NE(m->rope, nullptr);
  EXPECT_EQ(m->rope->tokens(), c.num_tokens());
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 1, 16, 16});
  EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{2, 10}));
  // Swapping two patches of the image: a mean-pooled ViT without positions cannot tell (it is
  // permutation invariant over patches); with RoPE it can.
  auto swapped = x.clone();
  swapped.slice(2, 0, 4).slice(3, 0, 4).copy_(x.slice(2, 8, 12).slice(3, 4, 8));
  swapped.slice(2, 8, 12).slice(3, 4, 8).copy_(x.slice(2, 0, 4).slice(3, 0, 4));
  c.pool = "mean";
  for (const char* pos : {"none", "rope"}) {
    c.pos = pos;
    torch::manual_seed(3);
    ViT mean(c);
    // At the timm initialisation the scores are ~1e-3 and attention is nearly uniform, so the
    // positions would barely show: sharpen it so RoPE's effect is of order one.
    for (auto& p : mean->named_parameters())
      if (p.key().find("attn.qkv.weight") != std::string::npos) p.value().mul_(30.0);
    const auto a = mean->forward(x), b = mean->forward(swapped);
    const double rel = ((a - b).abs().max() / a.abs().max()).item<double>();
    if (std::string(pos) == "none") EXPECT_LT(rel, 1e-5) << pos;
    else EXPECT_GT(rel, 1e-2) << pos;
  }
}
