#pragma once
// Attention plugins: shared libraries whose VITLAB_REGISTER_ATTENTION lines (registry.h) add
// variants to the registry when they load. Every app that builds models loads them from
// `--plugin PATH` and from VITLAB_PLUGINS (colon-separated) before it reads a config.
#include <string>
#include <vector>

#include "vitlab/attention/registry.h"
#include "vitlab/config.h"

namespace vitlab {

struct Plugin {
  std::string path;                     // absolute
  std::string sha256;                   // of the file, as `sha256sum` prints it
  std::vector<std::string> attentions;  // the names it registered
};

// Loads the plugins named in VITLAB_PLUGINS, then `paths` (the --plugin flags), each file once,
// and sets VITLAB_PLUGINS to every loaded plugin's absolute path, so child processes (vit_sweep's
// runs) load the same. A missing file, a file that is not a shared library, one that registers
// no attention, a name that is already taken or another plugin ABI: one error naming the file.
void load_plugins(const std::vector<std::string>& paths);
const std::vector<Plugin>& loaded_plugins();
json plugins_json();  // [{path, sha256, attentions}], as results record them

namespace detail {
// The registry's half of vitlab_register_attention: "" when added, else why not.
std::string add_plugin_attention(int abi, const char* name, AttentionFactory factory, const std::string& plugin);
}  // namespace detail

}  // namespace vitlab
