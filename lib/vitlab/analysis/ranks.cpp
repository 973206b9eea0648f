#include "vitlab/analysis/ranks.h"

#include <cmath>

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/results/plot.h"

namespace vitlab {

AttentionTensors attention_tensors(const torch::Tensor& Wq, const torch::Tensor& Wk, const torch::Tensor& Wv,
                                   const torch::Tensor& Wo, int64_t h) {
  const int64_t d = Wq.size(1), dh = Wq.size(0) / h;
  auto heads = [&](const torch::Tensor& w) { return w.reshape({h, dh, d}); };  // (h, d_h, d): rows of head i
  auto Wo_i = Wo.reshape({d, h, dh}).permute({1, 2, 0});                      // (h, d_h, d): W_o^i
  return {torch::matmul(heads(Wq).transpose(1, 2), heads(Wk)),   // (h, d, d): W_q^i W_k^i^T
          torch::matmul(heads(Wv).transpose(1, 2), Wo_i)};        // (h, d, d): W_v^i W_o^i
}

AttentionTensors attention_tensors(const MhaImpl& m) {
  torch::NoGradGuard no_grad;
  auto W = m.qkv->weight.to(torch::kDouble).cpu().chunk(3, 0);  // W_q, W_k, W_v: (h d_h, d)
  return attention_tensors(W[0], W[1], W[2], m.proj->weight.to(torch::kDouble).cpu(), m.dims.heads);
}

torch::Tensor unfold(const torch::Tensor& T, int mode) {
  TORCH_CHECK(T.dim() == 3 && mode >= 0 && mode < 3, "unfold: a 3-way tensor and a mode in 0..2");
  const std::vector<int64_t> order = mode == 0 ? std::vector<int64_t>{0, 1, 2}
                                   : mode == 1 ? std::vector<int64_t>{1, 0, 2}
                                               : std::vector<int64_t>{2, 0, 1};
  return T.permute(order).reshape({T.size(mode), -1});  // (n_mode, product of the others)
}

int64_t energy_rank(const torch::Tensor& s, double fraction) {
  auto e = (s * s).cumsum(0);
  const double total = e[-1].item<double>();
  if (total <= 0) return 0;
  auto a = e.accessor<double, 1>();
  for (int64_t r = 0; r < s.size(0); ++r)
    if (a[r] >= fraction * total * (1 - 1e-12)) return r + 1;
  return s.size(0);
}

double effective_rank(const torch::Tensor& s) {
  const double sum = s.sum().item<double>();
  if (sum <= 0) return 0;
  auto p = s / sum;
  auto nz = p.masked_select(p > 0);
  return std::exp(-(nz * nz.log()).sum().item<double>());
}

json spectrum_json(const torch::Tensor& singular_values) {
  auto s = singular_values.to(torch::kDouble).cpu().contiguous();
  std::vector<double> v(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  return json{{"size", s.numel()},
              {"effective_rank", effective_rank(s)},
              {"rank_90", energy_rank(s, 0.90)},
              {"rank_99", energy_rank(s, 0.99)},
              {"rank_999", energy_rank(s, 0.999)},
              {"singular_values", v}};
}

json rank_report(ViT& model) {
  json layers = json::array();
  for (size_t i = 0; i < model->blocks->size(); ++i) {
    auto* m = model->blocks[i]->as<Block>()->attn->as<MhaImpl>();
    if (!m)
      fail("rank analysis reads MHA layers; layer ", i, " is '", model->cfg.attention.name,
           "' (convert it to Tucker with vit_convert to see its ranks as factors)");
    AttentionTensors t = attention_tensors(*m);
    auto spectra = [](const torch::Tensor& T, const char* in, const char* out) {
      json j;
      const char* names[] = {"head", in, out};
      for (int mode = 0; mode < 3; ++mode) j[names[mode]] = spectrum_json(at::linalg_svdvals(unfold(T, mode)));
      return j;
    };
    layers.push_back({{"layer", i}, {"qk", spectra(t.qk, "query", "key")}, {"ov", spectra(t.ov, "value", "output")}});
  }
  return json{{"schema", "vitlab.ranks/1"}, {"model", to_json(model->cfg)}, {"layers", layers}};
}

std::string draw_rank_plot(const json& report, const std::string& out) {
  // One block per mode: layer, effective rank, 99% rank.
  const std::pair<const char*, const char*> modes[] = {{"qk", "query"}, {"qk", "key"},   {"qk", "head"},
                                                        {"ov", "value"}, {"ov", "output"}, {"ov", "head"}};
  std::string d = "# vit_ranks: per mode, layer effective_rank rank_99\n";
  char line[128];
  for (const auto& [tensor, mode] : modes) {
    d += std::string("\n\n# T_") + tensor + " " + mode + "\n";
    for (const auto& l : report["layers"]) {
      const json& s = l[tensor][mode];
      std::snprintf(line, sizeof line, "%d %.6g %d\n", l["layer"].get<int>(), s["effective_rank"].get<double>(),
                    s["rank_99"].get<int>());
      d += line;
    }
  }
  const json& m = report["model"];
  std::string s = "set multiplot layout 1,2 title 'Ranks of the attention tensors (d " + dump_json(m["dim"]) + ", " +
                  dump_json(m["heads"]) + " heads)'\n";
  s += "set xlabel 'layer' offset 0,0.5\nset autoscale xfix\nset xtics 1\nset grid xtics ytics lc rgb '#dddddd'\nset logscale y 2\n";
  s += "set key below horizontal maxrows 2 font ',9'\nset offsets graph 0.03, graph 0.03, graph 0.08, graph 0.08\n";
  const std::string dat = "'" + base_name(data_path(out)) + "'";
  for (int col : {2, 3}) {
    s += std::string("set ylabel '") + (col == 2 ? "effective rank (entropy)" : "rank for 99% energy") + "'\n";
    s += "plot \\\n";
    for (size_t i = 0; i < 6; ++i) {
      std::snprintf(line, sizeof line, "  %s index %zu using 1:%d with linespoints lw 2 title 'T_{%s} %s'%s\n",
                    dat.c_str(), i, col, modes[i].first, modes[i].second, i + 1 < 6 ? ", \\" : "");
      s += line;
    }
  }
  s += "unset multiplot\n";
  return render_gnuplot(out, d, s);
}

}  // namespace vitlab
