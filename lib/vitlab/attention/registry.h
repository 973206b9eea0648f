#pragma once
// Attention registry: one name maps to one constructor (timm-style). Variants validate their
// own options and fail with the option's key path. The built-in variants are listed in
// registry.cpp; a plugin (a shared library the apps load with --plugin, attention/plugins.h)
// adds its own with one line per variant at namespace scope:
//
//   vitlab::AttentionPtr make_talking_heads(const vitlab::AttentionConfig&, const vitlab::AttentionDims&);
//   VITLAB_REGISTER_ATTENTION(talking_heads, make_talking_heads)
#include <string>
#include <vector>

#include "vitlab/attention/attention.h"

// Bumped whenever a type a plugin sees changes its layout or virtual functions
// (AttentionImpl, AttentionConfig, AttentionDims, Options, Linear): a plugin built for another
// value is refused when it loads, before any of its code runs on vitlab's objects.
#define VITLAB_PLUGIN_ABI 1

namespace vitlab {

using AttentionFactory = AttentionPtr (*)(const AttentionConfig&, const AttentionDims&);

AttentionPtr make_attention(const AttentionConfig& cfg, const AttentionDims& dims);
std::vector<std::string> attention_names();
// The plugin file that registered `name`; "" for a built-in or unknown name.
std::string attention_plugin(const std::string& name);

}  // namespace vitlab

// What VITLAB_REGISTER_ATTENTION calls while a plugin loads (from its static initialisers, so
// it never throws: problems are kept and reported by load_plugins). A C function whose
// signature never changes, so the ABI check itself works across versions.
extern "C" int vitlab_register_attention(int abi, const char* name, vitlab::AttentionFactory factory);

#define VITLAB_REGISTER_ATTENTION(NAME, FACTORY)                                        \
  [[maybe_unused]] static const int vitlab_registered_attention_##NAME =               \
      ::vitlab_register_attention(VITLAB_PLUGIN_ABI, #NAME, &FACTORY);
