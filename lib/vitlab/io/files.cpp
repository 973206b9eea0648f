#include "vitlab/io/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "vitlab/error.h"

namespace vitlab {

static bool stat_mode(const std::string& path, mode_t type) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IFMT) == type;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}
bool is_directory(const std::string& path) { return stat_mode(path, S_IFDIR); }
bool is_regular_file(const std::string& path) { return stat_mode(path, S_IFREG); }

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

static std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string parent_path(const std::string& path) {
  std::string p = strip_slashes(path);
  auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string base_name(const std::string& path) {
  std::string p = strip_slashes(path);
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string extension_lower(const std::string& path) {
  std::string name = base_name(path);
  auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return "";
  std::string ext = name.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::vector<std::string> list_directory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail(dir, ": cannot read directory (", std::strerror(errno), ")");
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool make_directories(const std::string& dir) {
  if (dir.empty() || is_directory(dir)) return true;
  const std::string parent = parent_path(dir);
  if (parent != dir && !make_directories(parent)) return false;
  return ::mkdir(dir.c_str(), 0755) == 0 || (errno == EEXIST && is_directory(dir));
}

void remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    for (const auto& n : list_directory(path)) remove_tree(join_path(path, n));
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open (", std::strerror(errno), ")");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void atomic_write(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail(path, ": cannot write (", std::strerror(errno), ")");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(path, ": write failed (", std::strerror(e), ")");
    }
    done += static_cast<size_t>(n);
  }
  // A full disk may only show here: the data is on disk, or this is an error, before the rename.
  if (::fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(path, ": write failed (", std::strerror(e), ")");
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail(path, ": write failed (", std::strerror(e), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail(path, ": cannot rename into place (", std::strerror(e), ")");
  }
}

std::string temp_directory_for(const std::string& dst, const std::string& what) {
  const std::string parent = parent_path(dst), stale = base_name(dst) + ".tmp-";
  if (is_directory(parent))
    for (const auto& name : list_directory(parent))
      if (name.compare(0, stale.size(), stale) == 0) remove_tree(join_path(parent, name));
  const std::string tmp = dst + ".tmp-" + std::to_string(::getpid());
  ensure_directory(tmp, what);
  return tmp;
}

void replace_directory(const std::string& tmp, const std::string& dst) {
  // Swapping the two names in one step (Linux's renameat2 with RENAME_EXCHANGE) leaves no moment
  // without `dst` for a kill to fall into; where the filesystem cannot, two renames do it.
  if (path_exists(dst) && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dst.c_str(), RENAME_EXCHANGE) == 0) {
    remove_tree(tmp);  // now the previous version
    return;
  }
  const std::string old = dst + ".old";
  remove_tree(old);
  if (path_exists(dst) && std::rename(dst.c_str(), old.c_str()) != 0)
    fail(dst, ": cannot move the previous checkpoint aside (", std::strerror(errno), ")");
  if (std::rename(tmp.c_str(), dst.c_str()) != 0)
    fail(dst, ": cannot rename ", tmp, " into place (", std::strerror(errno), ")");
  remove_tree(old);
}

void ensure_directory(const std::string& dir, const std::string& what) {
  if (!make_directories(dir)) fail(what, " ", dir, ": cannot create directory (", std::strerror(errno), ")");
  // A directory that exists but is read-only shows up only when writing: probe it now.
  const std::string probe = join_path(dir, ".write-test-" + std::to_string(::getpid()));
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail(what, " ", dir, ": not writable (", std::strerror(errno), ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

std::string make_temp_directory(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = join_path(base && *base ? base : "/tmp", prefix + "XXXXXX");
  if (!::mkdtemp(templ.data())) fail(templ, ": cannot create a temporary directory (", std::strerror(errno), ")");
  return templ;
}

}  // namespace vitlab
