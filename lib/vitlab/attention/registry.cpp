#include "vitlab/attention/registry.h"

#include <map>

#include "vitlab/attention/btt.h"
#include "vitlab/attention/gqa.h"
#include "vitlab/attention/mha.h"
#include "vitlab/attention/mla.h"
#include "vitlab/attention/mlr.h"
#include "vitlab/attention/tpa.h"
#include "vitlab/attention/tucker.h"
#include "vitlab/error.h"

namespace vitlab {
namespace {

using Factory = AttentionPtr (*)(const AttentionConfig&, const AttentionDims&);

// To add a variant: write attention/<name>.{h,cpp} with a make_<name> factory and list it here.
const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> r = {
      {"mha", &make_mha},
      {"gqa", &make_gqa},
      {"mqa", &make_mqa},
      {"mla", &make_mla},
      {"tucker", &make_tucker},
      {"tpa", &make_tpa},
      {"mlr", &make_mlr},
      {"btt", &make_btt},
  };
  return r;
}

}  // namespace

AttentionPtr make_attention(const AttentionConfig& cfg, const AttentionDims& dims) {
  auto it = registry().find(cfg.name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : attention_names()) known += (known.empty() ? "" : ", ") + n;
    fail("model.attention.name: unknown attention '", cfg.name, "' (known: ", known, ")");
  }
  return it->second(cfg, dims);
}

std::vector<std::string> attention_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : registry()) names.push_back(name);
  return names;
}

}  // namespace vitlab
