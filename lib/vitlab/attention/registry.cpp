#include "vitlab/attention/registry.h"

#include <map>

#include "vitlab/attention/btt.h"
#include "vitlab/attention/gqa.h"
#include "vitlab/attention/mha.h"
#include "vitlab/attention/mla.h"
#include "vitlab/attention/mlr.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/attention/tpa.h"
#include "vitlab/attention/tucker.h"
#include "vitlab/error.h"

namespace vitlab {
namespace {

struct Entry {
  AttentionFactory factory;
  std::string plugin;  // the file that registered it; "" for the built-in variants
};

// To add a built-in variant: write attention/<name>.{h,cpp} with a make_<name> factory and list
// it here. Plugins add theirs through vitlab_register_attention.
std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> r = {
      {"mha", {&make_mha, ""}},
      {"gqa", {&make_gqa, ""}},
      {"mqa", {&make_mqa, ""}},
      {"mla", {&make_mla, ""}},
      {"tucker", {&make_tucker, ""}},
      {"tpa", {&make_tpa, ""}},
      {"mlr", {&make_mlr, ""}},
      {"btt", {&make_btt, ""}},
  };
  return r;
}

}  // namespace

AttentionPtr make_attention(const AttentionConfig& cfg, const AttentionDims& dims) {
  auto it = registry().find(cfg.name);
  if (it == registry().end()) {
    if (!cfg.plugin.empty())
      fail("model.attention.name: unknown attention '", cfg.name, "', which comes from the plugin ", cfg.plugin,
           ": load it with --plugin or VITLAB_PLUGINS");
    std::string known;
    for (const auto& n : attention_names()) known += (known.empty() ? "" : ", ") + n;
    fail("model.attention.name: unknown attention '", cfg.name, "' (known: ", known, ")");
  }
  return it->second.factory(cfg, dims);
}

std::vector<std::string> attention_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : registry()) names.push_back(name);
  return names;
}

std::string attention_plugin(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? "" : it->second.plugin;
}

namespace detail {

std::string add_plugin_attention(int abi, const char* name, AttentionFactory factory, const std::string& plugin) {
  if (abi != VITLAB_PLUGIN_ABI)
    return "built for vitlab's plugin ABI " + std::to_string(abi) + ", this vitlab has " +
           std::to_string(VITLAB_PLUGIN_ABI) + ": rebuild it against this vitlab";
  if (name == nullptr || factory == nullptr) return "registers an attention without a name or factory";
  auto it = registry().find(name);
  if (it != registry().end())
    return std::string("registers attention '") + name + "', which " +
           (it->second.plugin.empty() ? "vitlab has built in" : "plugin " + it->second.plugin + " registered");
  registry()[name] = Entry{factory, plugin};
  return "";
}

}  // namespace detail
}  // namespace vitlab
