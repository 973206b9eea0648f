#include "vitlab/analysis/convert.h"

#include "vitlab/error.h"

namespace vitlab {
namespace {

// Weights in torch.nn.Linear layout (out x in). Query head i is rows [i d_h, (i+1) d_h) of Wq;
// key/value head j rows [j d_h, (j+1) d_h) of Wk / Wv; output head i columns of Wo.
struct Grouped {
  torch::Tensor Wq, Wk, Wv, Wo, bo;  // (h d_h, d), (g d_h, d), (g d_h, d), (d, h d_h), (d)
  int64_t heads, groups, head_dim;
};

void check_ranks(const TuckerImpl& t, const TuckerRanks& want) {
  if (t.ranks.to_json() != want.to_json())
    fail("tucker conversion: target ranks ", dump_json(t.ranks.to_json()), " but the source needs ", dump_json(want.to_json()));
}

// T_qk[i] = W_q^i W_k^{g(i)T} with U_q = I, U_k = W_k (all key heads), G_qk[i] = W_q^i P_{g(i)}
// where P_j selects key head j; likewise U_v = W_v, G_ov[i] = P_{g(i)}^T W_o^i, U_o = I.
void from_grouped(TuckerImpl& t, const Grouped& s) {
  torch::NoGradGuard no_grad;
  const int64_t h = s.heads, dh = s.head_dim, per = h / s.groups, d = s.Wq.size(1);
  auto opts = s.Wq.options();
  t.U_q.copy_(torch::eye(d, opts));
  t.U_k.copy_(s.Wk.t());
  t.U_v.copy_(s.Wv.t());
  t.U_o.copy_(torch::eye(d, opts));
  t.S_qk.copy_(torch::eye(h, opts));
  t.S_ov.copy_(torch::eye(h, opts));
  t.G_qk.zero_();
  t.G_ov.zero_();
  for (int64_t i = 0; i < h; ++i) {
    const int64_t j = i / per;  // key/value head of query head i
    t.G_qk[i].slice(1, j * dh, (j + 1) * dh).copy_(s.Wq.slice(0, i * dh, (i + 1) * dh).t());  // (d, d_h)
    t.G_ov[i].slice(0, j * dh, (j + 1) * dh).copy_(s.Wo.slice(1, i * dh, (i + 1) * dh).t());  // (d_h, d)
  }
  t.bias.copy_(s.bo);
}

void no_input_bias(const Linear& l, const char* what) {
  if (l->bias.defined()) fail("tucker conversion: the source's ", what, " has a bias (set model.qkv_bias=false)");
}

}  // namespace

TuckerRanks tucker_ranks_for(const MhaImpl& m) {
  const int64_t h = m.dims.heads, inner = h * m.dims.head_dim;
  return {h, m.dims.dim, inner, h, inner, m.dims.dim};
}

TuckerRanks tucker_ranks_for(const GqaImpl& m) {
  const int64_t h = m.dims.heads, kv = m.kv_heads * m.dims.head_dim;
  return {h, m.dims.dim, kv, h, kv, m.dims.dim};
}

TuckerRanks tucker_ranks_for(const MlaImpl& m) {
  const int64_t h = m.dims.heads;
  return {h, m.q_rank > 0 ? m.q_rank : m.dims.dim, m.kv_rank, h, m.kv_rank, m.dims.dim};
}

void tucker_from(TuckerImpl& t, const MhaImpl& m) {
  check_ranks(t, tucker_ranks_for(m));
  no_input_bias(m.qkv, "qkv projection");
  auto W = m.qkv->weight.chunk(3, 0);  // [W_q; W_k; W_v]
  from_grouped(t, {W[0], W[1], W[2], m.proj->weight, m.proj->bias, m.dims.heads, m.dims.heads, m.dims.head_dim});
}

void tucker_from(TuckerImpl& t, const GqaImpl& m) {
  check_ranks(t, tucker_ranks_for(m));
  no_input_bias(m.q, "query projection");
  no_input_bias(m.kv, "key/value projection");
  auto W = m.kv->weight.chunk(2, 0);  // [W_k; W_v]
  from_grouped(t, {m.q->weight, W[0], W[1], m.proj->weight, m.proj->bias, m.dims.heads, m.kv_heads, m.dims.head_dim});
}

// U_q = W_dq, U_k = U_v = W_dkv, U_o = I, S = I, G_qk[i] = W_uq^i W_uk^i^T, G_ov[i] = W_uv^i W_o^i.
void tucker_from(TuckerImpl& t, const MlaImpl& m) {
  if (m.rope_dim > 0) fail("convert: MLA with decoupled RoPE (rope_dim ", m.rope_dim, ") is not a Tucker special case");
  check_ranks(t, tucker_ranks_for(m));
  torch::NoGradGuard no_grad;
  const int64_t h = m.dims.heads, dh = m.dims.head_dim, inner = h * dh;
  auto opts = m.q_up->weight.options();
  t.U_q.copy_(m.q_rank > 0 ? m.q_down->weight.t() : torch::eye(m.dims.dim, opts));
  t.U_k.copy_(m.kv_down->weight.t());
  t.U_v.copy_(m.kv_down->weight.t());
  t.U_o.copy_(torch::eye(m.dims.dim, opts));
  t.S_qk.copy_(torch::eye(h, opts));
  t.S_ov.copy_(torch::eye(h, opts));
  const auto& up = m.kv_up->weight;  // (2 h d_h, r_kv): [W_uk; W_uv]
  for (int64_t i = 0; i < h; ++i) {
    auto uq = m.q_up->weight.slice(0, i * dh, (i + 1) * dh).t();         // (r_q, d_h)
    auto uk = up.slice(0, i * dh, (i + 1) * dh).t();                     // (r_kv, d_h)
    auto uv = up.slice(0, inner + i * dh, inner + (i + 1) * dh).t();     // (r_kv, d_h)
    auto wo = m.proj->weight.slice(1, i * dh, (i + 1) * dh).t();         // (d_h, d)
    t.G_qk[i].copy_(uq.matmul(uk.t()));
    t.G_ov[i].copy_(uv.matmul(wo));
  }
  t.bias.copy_(m.proj->bias);
}

void gqa_from(GqaImpl& g, const MhaImpl& m) {
  if (g.kv_heads != m.dims.heads) fail("gqa_from(mha): needs kv_heads = heads");
  torch::NoGradGuard no_grad;
  const int64_t inner = m.dims.heads * m.dims.head_dim;
  g.q->weight.copy_(m.qkv->weight.slice(0, 0, inner));
  g.kv->weight.copy_(m.qkv->weight.slice(0, inner));
  if (m.qkv->bias.defined()) {
    g.q->bias.copy_(m.qkv->bias.slice(0, 0, inner));
    g.kv->bias.copy_(m.qkv->bias.slice(0, inner));
  }
  g.proj->weight.copy_(m.proj->weight);
  g.proj->bias.copy_(m.proj->bias);
}

}  // namespace vitlab
