#pragma once
// Small file helpers. Everything vitlab writes goes through atomic_write (or a temporary
// directory that is renamed), so a killed process never leaves a half-written file.
#include <string>

namespace vitlab {

std::string read_text(const std::string& path);
// Writes `bytes` to `path` through `path.tmp-<pid>` + fsync + rename.
void atomic_write(const std::string& path, const std::string& bytes);
// Replaces directory `dst` by the finished directory `tmp` (dst may exist).
void replace_directory(const std::string& tmp, const std::string& dst);
// Creates `dir` (and parents), failing with a message that names it.
void ensure_directory(const std::string& dir, const std::string& what);

}  // namespace vitlab
