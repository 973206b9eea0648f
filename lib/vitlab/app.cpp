#include "vitlab/app.h"

#include <c10/util/Exception.h>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "vitlab/attention/registry.h"
#include "vitlab/error.h"

namespace vitlab {

static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string error_message(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run on as we are
}

int run_app(const char* name, const std::function<int()>& body) {
  // A file-size limit (ulimit -f) then fails the write with EFBIG, reported as any full disk is,
  // instead of killing the process by its default action.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, error_message(e).c_str());
  }
  return 1;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& sets, const json* model) {
  json doc = path.empty() ? json::object() : read_json_file(path);
  if (model) doc["model"] = *model;
  for (const auto& s : sets) apply_override(doc, s);
  try {
    RunConfig cfg = run_from_json(doc);
    cfg.validate();
    // A plugin's variant records the plugin that provides it now (attention/plugins.h).
    if (std::string from = attention_plugin(cfg.model.attention.name); !from.empty()) cfg.model.attention.plugin = from;
    return cfg;
  } catch (const Error& e) {
    // A bad value given by --set names that flag, not the file it overrode.
    const std::string msg = e.what();
    for (auto it = sets.rbegin(); it != sets.rend(); ++it) {
      const std::string key = it->substr(0, it->find('='));
      if (msg.rfind(key + ": ", 0) == 0) fail("--set ", *it, ": ", msg.substr(key.size() + 2));
    }
    if (path.empty()) throw;
    fail(path, ": ", msg);
  }
}

}  // namespace vitlab
