#pragma once
// Reads a variant's options (model.attention.*), naming the key in every error.
#include <set>
#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

class Options {
 public:
  explicit Options(const AttentionConfig& cfg) : Options(cfg.options, "model.attention", cfg.name) {}
  // `path` prefixes the keys in messages; `owner` is the attention's name.
  Options(const json& options, std::string path, std::string owner)
      : options_(options), path_(std::move(path)), owner_(std::move(owner)) {}
  int64_t integer(const std::string& key);                  // required
  int64_t integer(const std::string& key, int64_t fallback);
  const json* object(const std::string& key);               // null when absent
  std::vector<int64_t> integers(const std::string& key, std::vector<int64_t> fallback);  // a list
  std::string text(const std::string& key, const std::string& fallback, std::initializer_list<const char*> allowed);
  void finish() const;                                      // unknown options are errors

 private:
  const json& options_;
  std::string path_, owner_;
  std::set<std::string> seen_;
};

}  // namespace vitlab
