#include "vitlab/attention/plugins.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "vitlab/error.h"
#include "vitlab/io/sha256.h"

namespace vitlab {
namespace {

std::vector<Plugin>& plugins() {
  static std::vector<Plugin> p;
  return p;
}

// The plugin being loaded (its static initialisers call vitlab_register_attention from inside
// dlopen, where an exception cannot pass): its path, what it registered, and the first problem.
struct Loading {
  std::string path;
  std::vector<std::string> names;
  std::string problem;
};
Loading* loading = nullptr;

void load_one(const std::string& given, const std::string& origin) {
  struct stat st;
  if (::stat(given.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) fail(origin, " ", given, ": no such file");
  char resolved[PATH_MAX];
  if (!::realpath(given.c_str(), resolved)) fail(origin, " ", given, ": cannot resolve the path");
  const std::string path = resolved;
  for (const Plugin& p : plugins())
    if (p.path == path) return;  // VITLAB_PLUGINS and --plugin may name the same file

  Loading now{path, {}, ""};
  loading = &now;
  // RTLD_NOW: a plugin built against another vitlab fails here on a missing symbol, not later.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  loading = nullptr;
  if (!handle) {
    const char* why = ::dlerror();
    fail(origin, " ", given, ": cannot load it as a shared library (", why ? why : "dlopen failed", ")");
  }
  // The library stays loaded for the life of the process: its factories are in the registry.
  if (!now.problem.empty()) fail(origin, " ", given, ": ", now.problem);
  if (now.names.empty())
    fail(origin, " ", given, ": registers no attention (a vitlab plugin has VITLAB_REGISTER_ATTENTION lines)");
  plugins().push_back(Plugin{path, sha256_file(path), now.names});
}

}  // namespace

void load_plugins(const std::vector<std::string>& paths) {
  if (const char* env = std::getenv("VITLAB_PLUGINS")) {
    std::string list = env;
    for (size_t start = 0; start <= list.size();) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) load_one(list.substr(start, end - start), "VITLAB_PLUGINS:");
      start = end + 1;
    }
  }
  for (const std::string& p : paths) load_one(p, "--plugin");
  if (plugins().empty()) return;
  std::string all;
  for (const Plugin& p : plugins()) all += (all.empty() ? "" : ":") + p.path;
  ::setenv("VITLAB_PLUGINS", all.c_str(), 1);
}

const std::vector<Plugin>& loaded_plugins() { return plugins(); }

json plugins_json() {
  json out = json::array();
  for (const Plugin& p : plugins()) out.push_back({{"path", p.path}, {"sha256", p.sha256}, {"attentions", p.attentions}});
  return out;
}

}  // namespace vitlab

extern "C" int vitlab_register_attention(int abi, const char* name, vitlab::AttentionFactory factory) {
  // Outside load_plugins (a variant linked into a program): the program itself registers it.
  const std::string problem =
      vitlab::detail::add_plugin_attention(abi, name, factory, vitlab::loading ? vitlab::loading->path : "");
  if (!vitlab::loading) {
    if (!problem.empty()) {
      std::fprintf(stderr, "vitlab: error: %s\n", problem.c_str());
      std::_Exit(1);
    }
    return 1;
  }
  if (problem.empty())
    vitlab::loading->names.push_back(name);
  else if (vitlab::loading->problem.empty())
    vitlab::loading->problem = problem;
  return 1;
}
