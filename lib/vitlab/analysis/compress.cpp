#include "vitlab/analysis/compress.h"

#include "vitlab/analysis/ranks.h"
#include "vitlab/error.h"
#include "vitlab/train/checkpoint.h"

namespace vitlab {
namespace {

torch::Tensor leading_left_vectors(const torch::Tensor& A, int64_t r) {
  auto [U, S, Vh] = at::linalg_svd(A, /*full_matrices=*/false);
  return U.narrow(1, 0, r);  // (rows, r)
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const double n = b.norm().item<double>();
  return n > 0 ? (a - b).norm().item<double>() / n : 0.0;
}

// The source's weights in float64, head-major as in MHA's qkv layout.
struct Source {
  torch::Tensor Wq, Wk, Wv, Wo;  // (h d_h, d) x3, (d, h d_h)
  torch::Tensor bq, bk, bv, bo;  // (h d_h) x3 (zeros when there are none), (d)
  int64_t h, dh, d;
};

Source source_of(const MhaImpl& m) {
  Source s;
  s.h = m.dims.heads, s.dh = m.dims.head_dim, s.d = m.dims.dim;
  auto W = m.qkv->weight.detach().to(torch::kDouble).cpu().chunk(3, 0);
  s.Wq = W[0], s.Wk = W[1], s.Wv = W[2];
  s.Wo = m.proj->weight.detach().to(torch::kDouble).cpu();
  s.bo = m.proj->bias.detach().to(torch::kDouble).cpu();
  if (m.qkv->bias.defined()) {
    auto b = m.qkv->bias.detach().to(torch::kDouble).cpu().chunk(3, 0);
    s.bq = b[0], s.bk = b[1], s.bv = b[2];
  } else {
    s.bq = s.bk = s.bv = torch::zeros({s.h * s.dh}, torch::kDouble);
  }
  return s;
}

// Output bias with the value bias folded in: sum_i b_v^i W_o^i.
torch::Tensor folded_output_bias(const Source& s) { return s.bo + s.Wo.matmul(s.bv); }

double dropped_query_bias(const Source& s) {
  const double w = s.Wq.norm().item<double>();
  return w > 0 ? s.bq.norm().item<double>() / w : 0.0;
}

// The source's T_qk and T_ov with other key/value weights, given per query head (h d_h, d).
AttentionTensors tensors_of(const Source& s, const torch::Tensor& Wk, const torch::Tensor& Wv) {
  return attention_tensors(s.Wq, Wk, Wv, s.Wo, s.h);
}

void copy_into(torch::Tensor& dst, const torch::Tensor& src) { dst.copy_(src.to(dst.options())); }

}  // namespace

Tucker3 hosvd(const torch::Tensor& T, const std::array<int64_t, 3>& ranks, int hooi_sweeps) {
  Tucker3 t;
  for (int n = 0; n < 3; ++n) t.U[n] = leading_left_vectors(unfold(T, n), ranks[n]);
  for (int sweep = 0; sweep < hooi_sweeps; ++sweep)
    for (int n = 0; n < 3; ++n) {
      // T projected on the other two factors, then the best r_n-dimensional subspace of mode n.
      torch::Tensor Y = T;
      for (int m = 0; m < 3; ++m)
        if (m != n) Y = torch::tensordot(Y, t.U[m], {m}, {0}).movedim(-1, m);
      t.U[n] = leading_left_vectors(unfold(Y, n), ranks[n]);
    }
  t.core = torch::einsum("abc,ai,bj,ck->ijk", {T, t.U[0], t.U[1], t.U[2]});  // (r_1, r_2, r_3)
  return t;
}

torch::Tensor reconstruct(const Tucker3& t) {
  return torch::einsum("ijk,ai,bj,ck->abc", {t.core, t.U[0], t.U[1], t.U[2]});
}

json tucker_compress(TuckerImpl& t, const MhaImpl& m, int hooi_sweeps) {
  torch::NoGradGuard no_grad;
  const Source s = source_of(m);
  const AttentionTensors T = tensors_of(s, s.Wk, s.Wv);
  const auto& r = t.ranks;
  Tucker3 qk = hosvd(T.qk, {r.head_qk, r.q, r.k}, hooi_sweeps);  // modes (head, query, key)
  Tucker3 ov = hosvd(T.ov, {r.head_ov, r.v, r.o}, hooi_sweeps);  // modes (head, value, output)
  copy_into(t.S_qk, qk.U[0]), copy_into(t.U_q, qk.U[1]), copy_into(t.U_k, qk.U[2]), copy_into(t.G_qk, qk.core);
  copy_into(t.S_ov, ov.U[0]), copy_into(t.U_v, ov.U[1]), copy_into(t.U_o, ov.U[2]), copy_into(t.G_ov, ov.core);
  copy_into(t.bias, folded_output_bias(s));
  return json{{"qk_error", relative_error(reconstruct(qk), T.qk)},
              {"ov_error", relative_error(reconstruct(ov), T.ov)},
              {"dropped_query_bias", dropped_query_bias(s)}};
}

json gqa_compress(GqaImpl& g, const MhaImpl& m) {
  torch::NoGradGuard no_grad;
  const Source s = source_of(m);
  const int64_t groups = g.kv_heads, per = s.h / groups;
  // (h d_h, d) -> (g, h/g, d_h, d) -> mean over the group's heads -> (g d_h, d)
  auto pool = [&](const torch::Tensor& w) { return w.reshape({groups, per, -1}).mean(1).reshape({groups * s.dh, -1}); };
  auto widen = [&](const torch::Tensor& w) {  // (g d_h, d) -> (h d_h, d), each group's head repeated
    return w.reshape({groups, 1, -1}).expand({groups, per, w.numel() / groups}).reshape({s.h * s.dh, -1});
  };
  auto Wk = pool(s.Wk), Wv = pool(s.Wv);
  copy_into(g.q->weight, s.Wq);
  copy_into(g.kv->weight, torch::cat({Wk, Wv}));
  if (g.q->bias.defined()) {
    copy_into(g.q->bias, s.bq);
    copy_into(g.kv->bias, torch::cat({pool(s.bk.unsqueeze(1)), pool(s.bv.unsqueeze(1))}).squeeze(1));
    copy_into(g.proj->bias, s.bo);
  } else {
    copy_into(g.proj->bias, folded_output_bias(s));
  }
  copy_into(g.proj->weight, s.Wo);
  const AttentionTensors src = tensors_of(s, s.Wk, s.Wv), got = tensors_of(s, widen(Wk), widen(Wv));
  return json{{"qk_error", relative_error(got.qk, src.qk)},
              {"ov_error", relative_error(got.ov, src.ov)},
              {"dropped_query_bias", g.q->bias.defined() ? 0.0 : dropped_query_bias(s)}};
}

json mla_compress(MlaImpl& l, const MhaImpl& m) {
  if (l.q_rank != 0 || l.rope_dim != 0) fail("convert to mla: the target keeps whole queries (q_rank 0, rope_dim 0)");
  torch::NoGradGuard no_grad;
  const Source s = source_of(m);
  const int64_t r = l.kv_rank, inner = s.h * s.dh;
  // [W_k W_v] = x -> (k, v) as a d x 2 h d_h matrix; its best rank-r approximation U_r S_r V_r^T.
  auto M = torch::cat({s.Wk, s.Wv}).t();  // (d, 2 h d_h)
  auto [U, S, Vh] = at::linalg_svd(M, /*full_matrices=*/false);
  auto down = U.narrow(1, 0, r);                                            // (d, r_kv): W_dkv
  auto up = (S.narrow(0, 0, r).unsqueeze(1) * Vh.narrow(0, 0, r)).t();      // (2 h d_h, r_kv): [W_uk; W_uv]
  copy_into(l.kv_down->weight, down.t());
  copy_into(l.kv_up->weight, up);
  copy_into(l.q_up->weight, s.Wq);
  copy_into(l.proj->weight, s.Wo);
  copy_into(l.proj->bias, folded_output_bias(s));
  auto approx = down.matmul(up.t());  // (d, 2 h d_h)
  const AttentionTensors src = tensors_of(s, s.Wk, s.Wv),
                         got = tensors_of(s, approx.narrow(1, 0, inner).t(), approx.narrow(1, inner, inner).t());
  return json{{"qk_error", relative_error(got.qk, src.qk)},
              {"ov_error", relative_error(got.ov, src.ov)},
              {"kv_error", relative_error(approx, M)},
              {"dropped_query_bias", dropped_query_bias(s)}};
}

namespace {

MhaImpl& mha_layer(ViT& model, size_t i) {
  auto* m = model->blocks[i]->as<Block>()->attn->as<MhaImpl>();
  if (!m) fail("convert: the source must be an MHA model; its attention is '", model->cfg.attention.name, "'");
  return *m;
}

}  // namespace

AttentionConfig attention_for_energy(ViT& src, const std::string& to, double energy) {
  if (!(energy > 0 && energy <= 1)) fail("--energy: ", energy, " must be in (0, 1]");
  std::array<int64_t, 6> r{};  // tucker: head_qk, q, k, head_ov, v, o; mla: r[0] = kv_rank
  for (size_t i = 0; i < src->blocks->size(); ++i) {
    MhaImpl& m = mha_layer(src, i);
    if (to == "tucker") {
      const AttentionTensors T = attention_tensors(m);
      for (int n = 0; n < 3; ++n) {
        r[n] = std::max(r[n], energy_rank(at::linalg_svdvals(unfold(T.qk, n)), energy));
        r[3 + n] = std::max(r[3 + n], energy_rank(at::linalg_svdvals(unfold(T.ov, n)), energy));
      }
    } else if (to == "mla") {
      const Source s = source_of(m);
      r[0] = std::max(r[0], energy_rank(at::linalg_svdvals(torch::cat({s.Wk, s.Wv})), energy));
    } else {
      fail("--energy: chooses ranks for tucker and mla, not ", to);
    }
  }
  AttentionConfig out;
  if (to == "mla") {
    out.name = "mla";
    out.options = json{{"kv_rank", r[0]}, {"q_rank", 0}};
  } else {
    out.name = "tucker";
    out.options = json{{"ranks", {{"head_qk", r[0]}, {"q", r[1]}, {"k", r[2]}, {"head_ov", r[3]}, {"v", r[4]}, {"o", r[5]}}}};
  }
  return out;
}

ViT compress_model(ViT& src, const AttentionConfig& attention, int hooi_sweeps, json* report) {
  if (src->cfg.pos == "rope")
    fail("convert: the source rotates queries and keys (model.pos rope), so its layers are not the bilinear forms "
         "T_qk, T_ov");
  ModelConfig cfg = src->cfg;
  cfg.attention = attention;
  ViT dst(cfg);
  dst->to(torch::kCPU);
  torch::NoGradGuard no_grad;
  // Everything but the attention layers carries over by name.
  const NamedTensors from = model_tensors(src);
  for (auto& entry : model_tensors(dst)) {  // not a structured binding: clang cannot capture one
    const std::string& name = entry.first;
    torch::Tensor& t = entry.second;
    if (name.find(".attn.") != std::string::npos) continue;
    auto it = std::find_if(from.begin(), from.end(), [&](const auto& e) { return e.first == name; });
    if (it == from.end() || it->second.sizes() != t.sizes()) fail("convert: ", name, " has no counterpart in the source");
    t.copy_(it->second);
  }
  json layers = json::array();
  int64_t before = 0, after = 0;
  for (size_t i = 0; i < dst->blocks->size(); ++i) {
    MhaImpl& m = mha_layer(src, i);
    auto& attn = dst->blocks[i]->as<Block>()->attn;
    json e;
    if (auto* t = attn->as<TuckerImpl>()) e = tucker_compress(*t, m, hooi_sweeps);
    else if (auto* g = attn->as<GqaImpl>()) e = gqa_compress(*g, m);
    else if (auto* l = attn->as<MlaImpl>()) e = mla_compress(*l, m);
    else fail("convert: --to must be tucker, gqa or mla, not ", attention.name);
    e["layer"] = i;
    layers.push_back(e);
    before += m.parameter_count(), after += attn->parameter_count();
  }
  json spec = attention.options;
  spec["name"] = attention.name;
  if (report)
    *report = json{{"attention", spec}, {"attention_params", {{"source", before}, {"converted", after}}},
                   {"hooi_sweeps", hooi_sweeps}, {"layers", layers}};
  return dst;
}

}  // namespace vitlab
