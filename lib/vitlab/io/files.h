#pragma once
// File helpers on plain POSIX calls. vitlab deliberately avoids std::filesystem: the pip
// LibTorch wheels export their own copy of libstdc++'s std::filesystem symbols (built with an
// older compiler), our calls bind to those at load time, and they crash. Everything vitlab
// writes goes through atomic_write (or a temporary directory that is renamed), so a killed
// process never leaves a half-written file.
#include <string>
#include <vector>

namespace vitlab {

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);  // "a/b"
std::string parent_path(const std::string& path);                   // "a/b/c" -> "a/b", "c" -> "."
std::string base_name(const std::string& path);                     // "a/b/c/" -> "c"
std::string extension_lower(const std::string& path);               // "x/Y.PNG" -> ".png"
// Names in `dir` (no "." or ".."), sorted; fails naming the directory when it cannot be read.
std::vector<std::string> list_directory(const std::string& dir);
// mkdir -p; returns false if it could not be created.
bool make_directories(const std::string& dir);
void remove_tree(const std::string& path);  // rm -rf; missing is fine

std::string read_text(const std::string& path);
// Writes `bytes` to `path` through `path.tmp-<pid>` + fsync + rename.
void atomic_write(const std::string& path, const std::string& bytes);
// An empty directory `dst.tmp-<pid>` in which to build `dst` before replace_directory. It first
// removes every `dst.tmp-*` left by a writer killed mid-write (its pid is not ours, so nothing
// else would ever remove it); `what` names the directory in errors (e.g. "--out").
std::string temp_directory_for(const std::string& dst, const std::string& what);
// Replaces directory `dst` by the finished directory `tmp` (dst may exist).
void replace_directory(const std::string& tmp, const std::string& dst);
// Creates `dir` (and parents) and checks that it is writable, failing with a message that
// names it and `what` (e.g. "--out").
void ensure_directory(const std::string& dir, const std::string& what);
// A new empty directory under $TMPDIR (or /tmp) whose name starts with `prefix`.
std::string make_temp_directory(const std::string& prefix);

}  // namespace vitlab
