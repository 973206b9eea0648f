#include "vitlab/analysis/match.h"

#include <cstdlib>
#include <functional>

#include "vitlab/attention/registry.h"
#include "vitlab/error.h"

namespace vitlab {

MatchResult match_attention_params(const AttentionConfig& base, const AttentionDims& dims, int64_t target) {
  // The candidate configs of one knob value, in increasing parameter count.
  std::function<AttentionConfig(int64_t)> at;
  std::vector<int64_t> knobs;
  if (base.name == "gqa") {
    for (int64_t g = 1; g <= dims.heads; ++g)
      if (dims.heads % g == 0) knobs.push_back(g);
    at = [&](int64_t g) { AttentionConfig c = base; c.options["kv_heads"] = g; return c; };
  } else if (base.name == "mla") {
    for (int64_t r = 1; r <= dims.dim; ++r) knobs.push_back(r);
    at = [&](int64_t r) { AttentionConfig c = base; c.options["kv_rank"] = r; return c; };
  } else if (base.name == "tucker") {
    for (int64_t r = 1; r <= dims.dim; ++r) knobs.push_back(r);
    at = [&](int64_t r) {
      AttentionConfig c = base;
      json& ranks = c.options["ranks"];
      if (!ranks.is_object()) ranks = json::object();
      for (const char* k : {"q", "k", "v", "o"}) ranks[k] = r;
      return c;
    };
  } else if (base.name == "tpa") {
    for (int64_t r = 1; r <= dims.dim; ++r) knobs.push_back(r);
    at = [&](int64_t r) {
      AttentionConfig c = base;
      for (const char* k : {"q_rank", "k_rank", "v_rank"}) c.options[k] = r;
      return c;
    };
  } else if (base.name == "btt") {
    for (int64_t r = 1; r <= dims.dim; ++r) knobs.push_back(r);
    at = [&](int64_t r) { AttentionConfig c = base; c.options["rank"] = r; return c; };
  } else {
    fail("--match-params: attention '", base.name, "' has no size to choose (use gqa, mla, tucker, tpa or btt)");
  }
  auto count = [&](size_t i) { return make_attention(at(knobs[i]), dims)->parameter_count(); };
  // Parameter counts grow with the knob: bisect for the first one at or above the target,
  // then take it or its predecessor, whichever lands nearer.
  size_t lo = 0, hi = knobs.size() - 1;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (count(mid) >= target) hi = mid; else lo = mid + 1;
  }
  size_t best = lo;
  if (lo > 0 && std::llabs(count(lo - 1) - target) <= std::llabs(count(lo) - target)) best = lo - 1;
  return {at(knobs[best]), count(best)};
}

}  // namespace vitlab
