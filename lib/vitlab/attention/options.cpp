#include "vitlab/attention/options.h"

#include "vitlab/error.h"

namespace vitlab {

int64_t Options::integer(const std::string& key) {
  seen_.insert(key);
  auto it = options_.find(key);
  if (it == options_.end()) fail(path_, ".", key, ": required by attention '", owner_, "'");
  if (!it->is_number_integer()) fail(path_, ".", key, ": expected an integer, got ", it->dump());
  return it->get<int64_t>();
}

int64_t Options::integer(const std::string& key, int64_t fallback) {
  return options_.contains(key) ? integer(key) : (seen_.insert(key), fallback);
}

const json* Options::object(const std::string& key) {
  seen_.insert(key);
  auto it = options_.find(key);
  if (it == options_.end()) return nullptr;
  if (!it->is_object()) fail(path_, ".", key, ": expected an object, got ", it->dump());
  return &*it;
}

void Options::finish() const {
  for (auto it = options_.begin(); it != options_.end(); ++it)
    if (!seen_.count(it.key())) fail(path_, ".", it.key(), ": unknown option for attention '", owner_, "'");
}

}  // namespace vitlab
