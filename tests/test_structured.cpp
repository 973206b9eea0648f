// TPA, MLR and BTT checked against independent constructions of their formulas (DESIGN
// section 4), in float64 with fresh random inputs, and the fused path against the composed one.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "vitlab/attention/btt.h"
#include "vitlab/attention/mha.h"
#include "vitlab/attention/mlr.h"
#include "vitlab/attention/registry.h"
#include "vitlab/attention/rope.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/attention/tpa.h"
#include "vitlab/compat.h"
#include "vitlab/layers/linear.h"

using namespace vitlab;

namespace {

double rel_err(const torch::Tensor& a, const torch::Tensor& b) { return ((a - b).norm() / b.norm()).item<double>(); }

// The autograd node that made `t`, a view (transpose) of that node's output.
std::string node_under_view(const torch::Tensor& t) { return t.grad_fn()->next_edges().at(0).function->name(); }

template <typename T>
std::shared_ptr<T> make(const AttentionConfig& cfg, const AttentionDims& dims) {
  auto p = std::dynamic_pointer_cast<T>(make_attention(cfg, dims));
  p->to(torch::kDouble);
  return p;
}

}  // namespace

// T6's formula built token by token: Q_t = (1/R) sum_r (x_t W_a[r]) (outer) (x_t W_b[r]).
TEST(Tpa, MatchesDensePerTokenConstruction) {
  const int64_t d = 10, h = 3, dh = 4, B = 2, N = 5;
  auto t = make<TpaImpl>({"tpa", json{{"q_rank", 3}, {"k_rank", 2}, {"v_rank", 1}}}, {d, h, dh, true});
  torch::NoGradGuard no_grad;
  auto x = torch::randn({B, N, d}, torch::kDouble);
  auto dense = [&](const torch::Tensor& wa, const torch::Tensor& wb, int64_t R) {
    auto out = torch::zeros({B, h, N, dh}, torch::kDouble);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t r = 0; r < R; ++r) {
          auto a = x[b][n].matmul(wa.slice(1, r * h, (r + 1) * h));     // (h)
          auto f = x[b][n].matmul(wb.slice(1, r * dh, (r + 1) * dh));   // (d_h)
          out.select(0, b).select(1, n).add_(torch::outer(a, f) / double(R));
        }
    return out;
  };
  auto Q = dense(t->a_q, t->b_q, 3), K = dense(t->a_k, t->b_k, 2), V = dense(t->a_v, t->b_v, 1);
  auto p = t->project(x, nullptr);
  EXPECT_LE(rel_err(p.q, Q), 1e-12);
  EXPECT_LE(rel_err(p.k, K), 1e-12);
  EXPECT_LE(rel_err(p.v, V), 1e-12);
  // The whole layer: softmax(Q K^T / sqrt(d_h)) V per head, then W_o.
  auto o = sdpa_composed(Q, K, V, 1.0 / std::sqrt(double(dh))).transpose(1, 2).reshape({B, N, h * dh});
  EXPECT_LE(rel_err(t->forward(x), t->proj(o)), 1e-12);
  EXPECT_EQ(t->kv_floats_per_token(), (2 + 1) * (h + dh));
}

// On CUDA in bf16 the per-token product runs in kernels/tpa_product.cu (where the kernels were
// built): its output and every gradient against the same layer in float32 (LibTorch's einsum),
// to bf16 rounding, without and with RoPE (whose rotated factors have other strides).
TEST(Tpa, KernelInBf16EqualsFloat32OnCuda) {
  if (!fused_bias_grad_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  const int64_t d = 64, h = 4, B = 3, grid = 4, N = 1 + grid * grid;  // 51 tokens: a partial last warp
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const Rope2d rope(grid, grid, 1, 100.0);
  for (auto [dh, rotate] : {std::pair<int64_t, bool>{16, false}, {16, true}, {64, false}}) {
    auto t = std::dynamic_pointer_cast<TpaImpl>(make_attention(
        {"tpa", json{{"q_rank", 3}, {"k_rank", 2}, {"v_rank", 1}}}, {d, h, dh, true, rotate, grid, 1}));
    t->to(torch::kCUDA);
    const auto x0 = torch::randn({B, N, d}, cuda);
    const auto w = torch::randn({3, B, h, N, dh}, cuda);  // weights of q, k, v in the loss
    std::vector<torch::Tensor> outs[2], grads[2];
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      t->zero_grad();
      auto x = x0.clone().requires_grad_(true);
      torch::Tensor loss;
      {
        compat::AutocastBf16 autocast(c10::DeviceType::CUDA, bf16 == 1);
        auto p = t->project(x, rotate ? &rope : nullptr);
        if (bf16) EXPECT_NE(node_under_view(p.q).find("TpaProduct"), std::string::npos) << node_under_view(p.q);
        outs[bf16] = {p.q.to(torch::kFloat), p.k.to(torch::kFloat), p.v.to(torch::kFloat)};
        loss = (outs[bf16][0] * w[0]).sum() + (outs[bf16][1] * w[1]).sum() + (outs[bf16][2] * w[2]).sum();
      }
      loss.backward();
      grads[bf16] = {x.grad(), t->a_q.grad(), t->b_q.grad(), t->a_k.grad(), t->b_k.grad(), t->a_v.grad(), t->b_v.grad()};
    }
    const std::string at = std::string(rotate ? "rope" : "learned") + " d_h " + std::to_string(dh);
    for (int i = 0; i < 3; ++i) EXPECT_LT(rel_err(outs[1][i], outs[0][i]), 1e-2) << at << " output " << i;
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LT(rel_err(grads[1][i], grads[0][i]), 2e-2) << at << " grad " << i;
  }
}

TEST(Mlr, OneLevelIsMha) {
  const AttentionDims dims{12, 3, 4, true, false, 3, 1};
  auto mha = make<MhaImpl>({"mha", json::object()}, dims);
  auto mlr = make<MlrImpl>({"mlr", json{{"ranks", {4}}}}, dims);
  torch::NoGradGuard no_grad;
  mlr->qkv->weight.copy_(mha->qkv->weight), mlr->qkv->bias.copy_(mha->qkv->bias);
  mlr->proj->weight.copy_(mha->proj->weight), mlr->proj->bias.copy_(mha->proj->bias);
  auto x = torch::randn({2, 10, 12}, torch::kDouble);
  EXPECT_LE(rel_err(mlr->forward(x), mha->forward(x)), 1e-12);
  EXPECT_EQ(mlr->parameter_count(), mha->parameter_count());
}

// s_ij = sum_l [cell_l(i) == cell_l(j)] q_i^(l) . k_j^(l) / sqrt(d_h), with the cells written
// out from their definition (level l cuts each axis, or the raster order, into 2^l parts).
TEST(Mlr, ScoresFollowTheCellDefinitionOnBothPaths) {
  const int64_t g = 4, dh = 6, h = 2, d = 12, N = 1 + g * g;
  for (const std::string layout : {"quadtree", "sequence"}) {
    const std::vector<int64_t> ranks{2, 3, 1};
    auto cell = [&](size_t l, int64_t token) -> int64_t {
      if (token == 0) return l == 0 ? 0 : -1;  // the class token: level 0 only
      const int64_t p = token - 1, parts = int64_t{1} << l;
      if (layout == "sequence") return p / (g * g / parts);
      return (p / g) / (g / parts) * 100 + (p % g) / (g / parts);
    };
    auto m = make<MlrImpl>({"mlr", json{{"ranks", ranks}, {"layout", layout}, {"path", "masked"}}},
                           {d, h, dh, true, false, g, 1});
    torch::NoGradGuard no_grad;
    auto x = torch::randn({1, N, d}, torch::kDouble);
    auto qkv = m->qkv(x).view({N, 3, h, dh});  // (N, 3, h, d_h)
    auto expected = torch::zeros({1, h, N, N}, torch::kDouble);
    for (int64_t head = 0; head < h; ++head)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          int64_t off = 0;
          for (size_t l = 0; l < ranks.size(); off += ranks[l++])
            if (cell(l, i) >= 0 && cell(l, i) == cell(l, j))
              s += (qkv[i][0][head].slice(0, off, off + ranks[l]) * qkv[j][1][head].slice(0, off, off + ranks[l]))
                       .sum()
                       .item<double>();
          expected[0][head][i][j] = s / std::sqrt(double(dh));
        }
    EXPECT_LE(rel_err(m->scores(x), expected), 1e-12) << layout;
    auto p = m->project(x, nullptr);  // the onehot expansion
    EXPECT_LE(rel_err(torch::matmul(p.q, p.k.transpose(-2, -1)) * p.scale, expected), 1e-12) << layout;
    // Both paths through the whole layer.
    auto masked = m->forward(x);
    m->path = "onehot";
    EXPECT_TRUE(m->uses_onehot());
    EXPECT_LE(rel_err(m->forward(x), masked), 1e-12) << layout;
  }
}

// On CUDA in bf16 the one-hot expansion runs in kernels/mlr_onehot.cu (where the kernels were
// built): the expanded q and k, the layer's output and every gradient against the same layer in
// float32 (LibTorch's broadcast products), to bf16 rounding; two and three levels, both layouts.
TEST(Mlr, OnehotKernelInBf16EqualsFloat32OnCuda) {
  if (!fused_bias_grad_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t B = 3, grid = 4, N = 1 + grid * grid;
  for (const auto& [ranks, layout] : std::vector<std::pair<std::vector<int64_t>, std::string>>{
           {{8, 8}, "quadtree"}, {{8, 4, 4}, "quadtree"}, {{8, 8}, "sequence"}}) {
    auto m = std::dynamic_pointer_cast<MlrImpl>(make_attention(
        {"mlr", json{{"ranks", ranks}, {"layout", layout}, {"path", "onehot"}}}, {64, 4, 16, true, false, grid, 1}));
    m->to(torch::kCUDA);
    const auto x0 = torch::randn({B, N, 64}, cuda), w = torch::randn({B, N, 64}, cuda);
    std::vector<torch::Tensor> outs[2], grads[2];
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      m->zero_grad();
      auto x = x0.clone().requires_grad_(true);
      torch::Tensor loss;
      {
        compat::AutocastBf16 autocast(c10::DeviceType::CUDA, bf16 == 1);
        auto p = m->project(x, nullptr);
        if (bf16) EXPECT_NE(node_under_view(p.q).find("OnehotExpand"), std::string::npos) << node_under_view(p.q);
        auto y = m->forward(x);
        outs[bf16] = {p.q.to(torch::kFloat), p.k.to(torch::kFloat), y.to(torch::kFloat)};
        loss = (outs[bf16][2] * w).sum();
      }
      loss.backward();
      grads[bf16] = {x.grad(), m->qkv->weight.grad(), m->qkv->bias.grad(), m->proj->weight.grad()};
    }
    const std::string at = layout + " " + std::to_string(ranks.size()) + " levels";
    EXPECT_TRUE(torch::equal(outs[1][0].eq(0), outs[0][0].eq(0))) << at << ": the zeros of the expansion";
    for (int i = 0; i < 3; ++i) EXPECT_LT(rel_err(outs[1][i], outs[0][i]), 1e-2) << at << " output " << i;
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LT(rel_err(grads[1][i], grads[0][i]), 2e-2) << at << " grad " << i;
  }
}

// The kernel's expansion is a copy, so it equals LibTorch's (the product with the one-hot, in
// float32) on the same bf16 q bit for bit, and so does its gradient; q strided as the projection
// leaves it, and level boundaries inside one 8-column chunk ({4, 1, 3}: 4 | 4 | 48 columns).
TEST(Mlr, OnehotKernelCopiesExactlyOnCuda) {
  if (!fused_bias_grad_built() || !torch::cuda::is_available())
    GTEST_SKIP() << "needs the fused kernels (a CUDA build with nvcc) and a CUDA device";
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t B = 3, grid = 4, N = 1 + grid * grid, h = 2;
  for (const auto& [ranks, layout] : std::vector<std::pair<std::vector<int64_t>, std::string>>{
           {{8, 8}, "quadtree"}, {{4, 1, 3}, "quadtree"}, {{2, 1, 5}, "sequence"}}) {
    const int64_t dh = std::accumulate(ranks.begin(), ranks.end(), int64_t{0});
    auto m = std::dynamic_pointer_cast<MlrImpl>(make_attention(
        {"mlr", json{{"ranks", ranks}, {"layout", layout}, {"path", "onehot"}}}, {h * dh, h, dh, true, false, grid, 1}));
    m->to(torch::kCUDA);
    const auto packed = torch::randn({B, N, 3, h, dh}, cuda).to(torch::kBFloat16).requires_grad_(true);
    const auto packed32 = packed.detach().to(torch::kFloat).requires_grad_(true);
    auto ext = m->expand(packed.select(2, 0).transpose(1, 2));    // (B, h, N, width), the kernel
    auto ref = m->expand(packed32.select(2, 0).transpose(1, 2));  // (B, h, N, width), LibTorch
    const std::string at = layout + " " + std::to_string(ranks.size()) + " levels";
    EXPECT_NE(node_under_view(ext).find("OnehotExpand"), std::string::npos) << node_under_view(ext);
    EXPECT_TRUE(torch::equal(ext.to(torch::kFloat), ref)) << at;
    const auto dext = torch::randn(ext.sizes(), cuda).to(torch::kBFloat16);
    auto g = torch::autograd::grad({ext}, {packed}, {dext})[0];
    auto g32 = torch::autograd::grad({ref}, {packed32}, {dext.to(torch::kFloat)})[0];
    EXPECT_TRUE(torch::equal(g.to(torch::kFloat), g32)) << at;
  }
}

TEST(Mlr, AutoPathFollowsTheOnehotWidth) {
  auto narrow = make<MlrImpl>({"mlr", json{{"ranks", {4, 4}}}}, {32, 4, 8, true, false, 7, 1});
  EXPECT_EQ(narrow->onehot_width(), 4 + 4 * 4);
  EXPECT_TRUE(narrow->uses_onehot());
  auto wide = make<MlrImpl>({"mlr", json{{"ranks", {2, 2, 4}}}}, {32, 4, 8, true, false, 8, 1});
  EXPECT_EQ(wide->onehot_width(), 2 + 2 * 4 + 4 * 16);
  EXPECT_TRUE(wide->uses_onehot());
  auto deep = make<MlrImpl>({"mlr", json{{"ranks", {2, 2, 2, 2}}}}, {32, 4, 8, true, false, 8, 1});
  EXPECT_EQ(deep->onehot_width(), 2 + 8 + 32 + 128);
  auto deeper = make<MlrImpl>({"mlr", json{{"ranks", {1, 1, 1, 5}}}}, {32, 4, 8, true, false, 8, 1});
  EXPECT_EQ(deeper->onehot_width(), 1 + 4 + 16 + 320);
  EXPECT_FALSE(deeper->uses_onehot());
  EXPECT_EQ(deeper->describe()["kernel"], "composed (masked)");
}

// q . k = x^T W x' with W[(a,b),(c,e)] = sum_s L[b,a,c,s] R[c,b,s,e], assembled entry by entry,
// for both ways of computing q and k.
TEST(Btt, ScoreIsTheDenseBilinearForm) {
  const int64_t m1 = 2, m2 = 3, d = m1 * m2, r = 2, h = 2, N = 4;
  for (const char* projection : {"factored", "dense"}) {
    auto m = make<BttImpl>({"btt", json{{"m1", m1}, {"rank", r}, {"projection", projection}}}, {d, h, 3, true});
    EXPECT_EQ(m->uses_dense(torch::kCPU), std::string(projection) == "dense");
    torch::NoGradGuard no_grad;
    auto x = torch::randn({1, N, d}, torch::kDouble);
    auto p = m->project(x, nullptr);
    for (int64_t head = 0; head < h; ++head) {
      auto W = torch::zeros({d, d}, torch::kDouble);
      for (int64_t a = 0; a < m1; ++a)
        for (int64_t b = 0; b < m2; ++b)
          for (int64_t c = 0; c < m1; ++c)
            for (int64_t e = 0; e < m2; ++e) {
              double w = 0;
              for (int64_t s = 0; s < r; ++s)
                w += m->L[head][b][a][c][s].item<double>() * m->R[head][c][b][s][e].item<double>();
              W[a * m2 + b][c * m2 + e] = w;  // x viewed as (m1 x m2): flat index a m2 + b
            }
      auto expected = x[0].matmul(W).matmul(x[0].t());   // (N, N): x_i^T W x_j
      auto got = p.q[0][head].matmul(p.k[0][head].t());  // (N, N)
      EXPECT_LE(rel_err(got, expected), 1e-12) << projection << " head " << head;
    }
    EXPECT_EQ(m->parameter_count(), h * d * r * (m1 + m2) + 2 * d * h * 3 + h * 3 + d);
  }
}

// The dense projection is the factored one computed another way: the same q and k, and the same
// gradients for L, R and x (float64). "auto" takes the factored one on the CPU.
TEST(Btt, DenseProjectionEqualsFactored) {
  const AttentionDims dims{12, 2, 4, true};
  auto factored = make<BttImpl>({"btt", json{{"m1", 3}, {"rank", 2}}}, dims);
  EXPECT_FALSE(factored->uses_dense(torch::kCPU));
  EXPECT_TRUE(factored->uses_dense(torch::Device(torch::kCUDA, 0)));
  auto dense = make<BttImpl>({"btt", json{{"m1", 3}, {"rank", 2}, {"projection", "dense"}}}, dims);
  {
    torch::NoGradGuard no_grad;
    auto to = dense->named_parameters();
    for (const auto& p : factored->named_parameters()) to[p.key()].copy_(p.value());
  }
  auto x = torch::randn({2, 5, 12}, torch::dtype(torch::kDouble).requires_grad(true));
  std::vector<torch::Tensor> outs, grads;
  for (auto& m : {factored, dense}) {
    auto p = m->project(x, nullptr);
    outs.push_back(p.q), outs.push_back(p.k);
    auto g = torch::autograd::grad({(p.q * p.q.sin()).sum() + (p.k * p.k.cos()).sum()}, {m->L, m->R, x});
    grads.insert(grads.end(), g.begin(), g.end());
  }
  EXPECT_LE(rel_err(outs[2], outs[0]), 1e-12);
  EXPECT_LE(rel_err(outs[3], outs[1]), 1e-12);
  for (int i = 0; i < 3; ++i) EXPECT_LE(rel_err(grads[3 + i], grads[i]), 1e-12) << "gradient " << i;
}

// Fused kernel versus the plain composition, for every variant (LibTorch 2.x only).
TEST(Zoo, FusedPathEqualsComposedPath) {
  if (!compat::kHasFusedSdpa) GTEST_SKIP() << "LibTorch " << TORCH_VERSION << " has no fused SDPA (needs 2.x)";
  const AttentionDims dims{32, 4, 8, true, false, 4, 1};
  for (const AttentionConfig& c : std::vector<AttentionConfig>{
           {"mha", json::object()}, {"gqa", json{{"kv_heads", 2}}}, {"mqa", json::object()},
           {"mla", json{{"kv_rank", 8}, {"q_rank", 12}}}, {"tucker", json{{"ranks", {{"k", 8}, {"v", 12}}}}},
           {"tpa", json::object()}, {"mlr", json{{"ranks", {4, 2, 2}}, {"path", "onehot"}}},
           {"btt", json{{"rank", 2}}}}) {
    auto a = make_attention(c, dims);
    torch::NoGradGuard no_grad;
    auto x = torch::randn({2, 17, 32});
    auto p = a->project(x, nullptr);
    auto composed = a->combine(sdpa_composed(p.q, p.k, p.v, p.scale));
    EXPECT_LE(rel_err(a->forward(x), composed), 1e-5) << c.name;
  }
}
