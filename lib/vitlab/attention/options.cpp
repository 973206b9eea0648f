#include "vitlab/attention/options.h"

#include "vitlab/error.h"

namespace vitlab {

int64_t Options::integer(const std::string& key) {
  seen_.insert(key);
  auto it = options_.find(key);
  if (it == options_.end()) fail(path_, ".", key, ": required by attention '", owner_, "'");
  if (!it->is_number_integer()) fail(path_, ".", key, ": expected an integer, got ", dump_json(*it));
  return it->get<int64_t>();
}

int64_t Options::integer(const std::string& key, int64_t fallback) {
  return options_.contains(key) ? integer(key) : (seen_.insert(key), fallback);
}

const json* Options::object(const std::string& key) {
  seen_.insert(key);
  auto it = options_.find(key);
  if (it == options_.end()) return nullptr;
  if (!it->is_object()) fail(path_, ".", key, ": expected an object, got ", dump_json(*it));
  return &*it;
}

std::vector<int64_t> Options::integers(const std::string& key, std::vector<int64_t> fallback) {
  seen_.insert(key);
  auto it = options_.find(key);
  if (it == options_.end()) return fallback;
  if (!it->is_array() || it->empty()) fail(path_, ".", key, ": expected a list of integers, got ", dump_json(*it));
  std::vector<int64_t> out;
  for (const auto& e : *it) {
    if (!e.is_number_integer()) fail(path_, ".", key, ": expected a list of integers, got ", dump_json(*it));
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::string Options::text(const std::string& key, const std::string& fallback,
                          std::initializer_list<const char*> allowed) {
  seen_.insert(key);
  auto it = options_.find(key);
  if (it == options_.end()) return fallback;
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  if (!it->is_string()) fail(path_, ".", key, ": expected one of ", list, ", got ", dump_json(*it));
  const std::string v = it->get<std::string>();
  for (const char* a : allowed)
    if (v == a) return v;
  fail(path_, ".", key, ": '", v, "' is not one of ", list);
}

void Options::finish() const {
  for (auto it = options_.begin(); it != options_.end(); ++it)
    if (!seen_.count(it.key())) fail(path_, ".", it.key(), ": unknown option for attention '", owner_, "'");
}

}  // namespace vitlab
