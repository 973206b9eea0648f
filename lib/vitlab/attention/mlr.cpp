#include "vitlab/attention/mlr.h"

#include <cmath>
#include <numeric>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

#ifdef VITLAB_WITH_KERNELS
#include "vitlab/kernels/mlr_onehot.h"
#include "vitlab/layers/kernel_launch.h"
#endif

namespace vitlab {
namespace {

// Beyond this width the onehot expansion costs the fused kernel more than the masked
// composition saves, and leaves the head widths the fused kernels are built for.
constexpr int64_t kMaxOnehotWidth = 256;

#ifdef VITLAB_WITH_KERNELS
// The expansion through kernels/mlr_onehot.cu: q (B, h, N, d_h) -> ext (B, N, h, width), and back.
// `cell` (levels, N) int32 on q's device.
class OnehotExpand : public torch::autograd::Function<OnehotExpand> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& cell,
                               const kernels::MlrLevels& levels, int64_t width) {
    const int64_t B = q.size(0), h = q.size(1), N = q.size(2), dh = q.size(3);
    auto ext = torch::empty({B, N, h, width}, q.options());
    kernels::mlr_onehot_forward(q.data_ptr(), q.stride(0), q.stride(1), q.stride(2), cell.data_ptr<int32_t>(), levels,
                                ext.data_ptr(), B, h, N, width, kernel_launch::stream());
    ctx->saved_data["cell"] = cell;
    ctx->saved_data["shape"] = std::vector<int64_t>{B, h, N, dh, width};
    std::vector<int64_t> lv;
    for (int l = 0; l < levels.count; ++l)
      lv.insert(lv.end(), {levels.q_offset[l], levels.rank[l], levels.ext_offset[l], levels.cells[l]});
    ctx->saved_data["levels"] = lv;
    return ext;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto cell = ctx->saved_data["cell"].toTensor();
    const auto s = ctx->saved_data["shape"].toIntVector(), lv = ctx->saved_data["levels"].toIntVector();
    kernels::MlrLevels levels{static_cast<int>(lv.size() / 4), {}, {}, {}, {}};
    for (int l = 0; l < levels.count; ++l) {
      levels.q_offset[l] = static_cast<int>(lv[4 * l]), levels.rank[l] = static_cast<int>(lv[4 * l + 1]);
      levels.ext_offset[l] = static_cast<int>(lv[4 * l + 2]), levels.cells[l] = static_cast<int>(lv[4 * l + 3]);
    }
    const int64_t B = s[0], h = s[1], N = s[2], dh = s[3], width = s[4];
    const auto dext = grads[0].contiguous();  // (B, N, h, width)
    auto dq = torch::empty({B, N, h, dh}, dext.options());
    kernels::mlr_onehot_backward(dext.data_ptr(), cell.data_ptr<int32_t>(), levels, dq.data_ptr(), B, h, N, dh, width,
                                 kernel_launch::stream());
    return {dq.transpose(1, 2), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};
#endif

}  // namespace

MlrImpl::MlrImpl(const AttentionDims& d, std::vector<int64_t> r, std::string lay, std::string p)
    : dims(d), ranks(std::move(r)), layout(std::move(lay)), path(std::move(p)) {
  const int64_t inner = d.heads * d.head_dim;
  qkv = register_module("qkv", Linear(torch::nn::LinearOptions(d.dim, 3 * inner).bias(d.qkv_bias)));
  proj = register_module("proj", Linear(inner, d.dim));
  // Cell of every token at every level; the patches follow the prefix tokens in raster order.
  const int64_t g = d.grid, P = g * g, N = d.prefix + P;
  for (size_t l = 0; l < ranks.size(); ++l) {
    const int64_t parts = int64_t{1} << l;
    std::vector<int64_t> cell(N, l == 0 ? 0 : -1);
    for (int64_t p = 0; p < P && l > 0; ++p)
      cell[d.prefix + p] = layout == "quadtree" ? (p / g * parts / g) * parts + (p % g) * parts / g : p * parts / P;
    cell_counts_.push_back(l == 0 ? 1 : layout == "quadtree" ? parts * parts : parts);
    cell_of_.push_back(cell);
  }
}

const std::vector<torch::Tensor>& MlrImpl::cells(const torch::Tensor& like, int64_t N) {
  if (ranks.size() > 1 && N != static_cast<int64_t>(cell_of_[0].size()))
    fail("mlr: ", N, " tokens, but the layer was built for ", cell_of_[0].size());
  if (onehots_.empty() || onehots_[0].options().device() != like.device() || onehots_[0].dtype() != like.dtype() ||
      onehots_[0].size(0) != N) {
    onehots_.clear();
    for (size_t l = 0; l < ranks.size(); ++l) {
      auto oh = torch::zeros({N, cell_counts_[l]}, torch::kDouble);  // (N, cells_l)
      for (int64_t t = 0; t < N; ++t) {
        const int64_t c = l == 0 ? 0 : cell_of_[l][t];
        if (c >= 0) oh[t][c] = 1.0;
      }
      onehots_.push_back(oh.to(like.options()));
    }
  }
  return onehots_;
}

const torch::Tensor& MlrImpl::cell_table(const torch::Tensor& like, int64_t N) {
  if (!cell_table_.defined() || cell_table_.device() != like.device() || cell_table_.size(1) != N) {
    auto table = torch::zeros({static_cast<int64_t>(ranks.size()), N}, torch::kInt);  // level 0: one cell
    auto at = table.accessor<int32_t, 2>();
    for (size_t l = 1; l < ranks.size(); ++l)
      for (int64_t t = 0; t < N; ++t) at[l][t] = static_cast<int32_t>(cell_of_[l][t]);
    cell_table_ = table.to(like.device());
  }
  return cell_table_;
}

torch::Tensor MlrImpl::expand(const torch::Tensor& t) {
  const int64_t N = t.size(2);
  const auto& oh = cells(t, N);
#ifdef VITLAB_WITH_KERNELS
  const int64_t width = onehot_width();
  kernels::MlrLevels levels{static_cast<int>(ranks.size()), {}, {}, {}, {}};
  if (t.is_cuda() && t.scalar_type() == torch::kBFloat16 && t.stride(3) == 1 &&
      kernels::mlr_onehot_supports(levels.count, width, t.size(0) * t.size(1) * N, t.size(3))) {
    for (int l = 0, q_off = 0, ext_off = 0; l < levels.count; ++l) {
      levels.q_offset[l] = q_off, levels.rank[l] = static_cast<int>(ranks[l]);
      levels.ext_offset[l] = ext_off, levels.cells[l] = static_cast<int>(cell_counts_[l]);
      q_off += levels.rank[l], ext_off += levels.rank[l] * levels.cells[l];
    }
    return OnehotExpand::apply(t, cell_table(t, N), levels, width).transpose(1, 2);  // (B, h, N, width)
  }
#endif
  // Per level q^(l) (outer) onehot(cell): q_ext . k_ext = sum_l [same cell] q^(l) . k^(l).
  std::vector<torch::Tensor> parts;
  int64_t off = 0;
  for (size_t l = 0; l < ranks.size(); off += ranks[l++]) {
    auto tl = t.narrow(-1, off, ranks[l]).unsqueeze(-1);               // (B, h, N, r_l, 1)
    parts.push_back((tl * oh[l].view({1, 1, N, 1, -1})).flatten(-2));  // (B, h, N, r_l cells_l)
  }
  return torch::cat(parts, -1);  // (B, h, N, onehot width)
}

Projected MlrImpl::project(const torch::Tensor& x, const Rope2d*) {
  auto qkv_ = split_heads(qkv(x), 3, dims.heads);  // 3 x (B, h, N, d_h)
  return {expand(qkv_[0]), expand(qkv_[1]), qkv_[2], 1.0 / std::sqrt(static_cast<double>(dims.head_dim))};
}

torch::Tensor MlrImpl::scores(const torch::Tensor& x, const Rope2d*) {
  const int64_t h = dims.heads, dh = dims.head_dim;
  auto qkv_ = split_heads(qkv(x), 3, h);  // 3 x (B, h, N, d_h)
  const auto& oh = cells(x, x.size(1));
  torch::Tensor s;
  int64_t off = 0;
  for (size_t l = 0; l < ranks.size(); off += ranks[l++]) {
    auto ql = qkv_[0].narrow(-1, off, ranks[l]), kl = qkv_[1].narrow(-1, off, ranks[l]);  // (B, h, N, r_l)
    auto term = torch::matmul(ql, kl.transpose(-2, -1));                                  // (B, h, N, N)
    if (l > 0) term = term * oh[l].matmul(oh[l].t());  // (N, N): 1 where i and j share the level-l cell
    s = s.defined() ? s + term : term;
  }
  return s / std::sqrt(static_cast<double>(dh));
}

torch::Tensor MlrImpl::forward(const torch::Tensor& x, const Rope2d* rope) {
  if (uses_onehot()) return AttentionImpl::forward(x, rope);
  const int64_t B = x.size(0), N = x.size(1), h = dims.heads, dh = dims.head_dim;
  auto v = qkv(x).view({B, N, 3, h, dh}).select(2, 2).transpose(1, 2);  // (B, h, N, d_h)
  return combine(softmax_values(scores(x, rope), v));
}

torch::Tensor MlrImpl::combine(const torch::Tensor& o) {
  return proj(merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t MlrImpl::onehot_width() const {
  int64_t w = 0;
  for (size_t l = 0; l < ranks.size(); ++l) w += ranks[l] * cell_counts_[l];
  return w;
}

bool MlrImpl::uses_onehot() const { return path == "onehot" || (path == "auto" && onehot_width() <= kMaxOnehotWidth); }

int64_t MlrImpl::parameter_count() const {
  const int64_t inner = dims.heads * dims.head_dim;
  return 4 * dims.dim * inner + (dims.qkv_bias ? 3 * inner : 0) + dims.dim;
}

int64_t MlrImpl::kv_floats_per_token() const { return 2 * dims.heads * dims.head_dim; }

double MlrImpl::flops_per_token(int64_t n) const {
  // What the chosen path computes: the onehot scores have the expanded width.
  const double d = dims.dim, h = dims.heads, inner = h * dims.head_dim;
  const double score_width = uses_onehot() ? onehot_width() : dims.head_dim;
  return 2.0 * d * 3 * inner + 2.0 * n * h * score_width + 2.0 * n * inner + 2.0 * inner * d;
}

json MlrImpl::describe() const {
  return json{{"name", "mlr"},        {"heads", dims.heads}, {"head_dim", dims.head_dim}, {"ranks", ranks},
              {"layout", layout},     {"path", path},        {"onehot_width", onehot_width()},
              {"kernel", uses_onehot() ? std::string(sdpa_path()) + " (onehot)" : std::string("composed (masked)")}};
}

AttentionPtr make_mlr(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options o(cfg);
  // Default: two levels, half the head width global and half within the four quadrants.
  const int64_t dh = dims.head_dim;
  auto ranks = o.integers("ranks", dh >= 2 ? std::vector<int64_t>{dh - dh / 2, dh / 2} : std::vector<int64_t>{dh});
  const std::string layout = o.text("layout", "quadtree", {"quadtree", "sequence"});
  const std::string path = o.text("path", "auto", {"auto", "onehot", "masked"});
  o.finish();
  reject_rope(dims, "mlr", "its cells are absolute positions, so scores cannot depend on the offset alone");
  std::string sum;
  for (int64_t r : ranks) {
    if (r < 1) fail("model.attention.ranks: every level rank must be at least 1, got ", r);
    sum += (sum.empty() ? "" : "+") + std::to_string(r);
  }
  const int64_t total = std::accumulate(ranks.begin(), ranks.end(), int64_t{0});
  if (total != dh) fail("model.attention.ranks: ", sum, "=", total, " must sum to the head width d_h=", dh);
  if (ranks.size() > 1) {
    if (dims.grid < 1) fail("model.attention.ranks: mlr with several levels needs the patch grid (use it in a ViT)");
    const int64_t deepest = int64_t{1} << (ranks.size() - 1);
    const int64_t extent = layout == "quadtree" ? dims.grid : dims.grid * dims.grid;
    if (deepest > extent)
      fail("model.attention.ranks: ", ranks.size(), " levels cut the ", layout == "quadtree" ? "grid side " : "sequence of ",
           extent, " patches into ", deepest, " parts; use at most ", static_cast<int>(std::log2(extent)) + 1, " levels");
  }
  return std::make_shared<MlrImpl>(dims, ranks, layout, path);
}

}  // namespace vitlab
