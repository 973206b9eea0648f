#include "vitlab/io/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/text.h"

namespace vitlab {

std::string ChildExit::describe() const {
  if (signal != 0) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exit status " + std::to_string(code);
}

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  for (const auto& dir : split(path ? path : "/usr/bin:/bin", ':')) {
    const std::string full = join_path(dir.empty() ? "." : dir, name);
    if (is_regular_file(full) && ::access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

std::string executable_directory() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail("cannot find the running executable: ", std::strerror(errno));
  buf[n] = '\0';
  return parent_path(buf);
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path, int keep_fd) {
  const std::string program = find_in_path(argv.at(0));
  if (program.empty()) fail(argv[0], ": program not found");
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed (LibTorch may have started threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string exec_error = "cannot run " + program + "\n";
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) fail("fork: ", std::strerror(errno));
  if (pid > 0) return pid;

  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(126);  // the parent died before prctl took effect
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, 0);
  if (!log_path.empty()) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) ::_exit(125);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  if (keep_fd >= 0) ::fcntl(keep_fd, F_SETFD, 0);  // survives exec; every other lock is O_CLOEXEC
  ::execv(program.c_str(), args.data());
  ssize_t ignored = ::write(2, exec_error.data(), exec_error.size());
  (void)ignored;
  ::_exit(127);
}

static ChildExit exit_of(pid_t pid, int status) {
  ChildExit e;
  e.pid = pid;
  if (WIFEXITED(status)) e.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  return e;
}

ChildExit wait_child(pid_t pid) {
  int status = 0;
  pid_t got;
  do got = ::waitpid(pid, &status, 0);
  while (got < 0 && errno == EINTR);
  if (got < 0) fail("waitpid: ", std::strerror(errno));
  return exit_of(got, status);
}

bool wait_any_child(ChildExit& e) {
  int status = 0;
  const pid_t got = ::waitpid(-1, &status, 0);
  if (got < 0 && errno == EINTR) return false;
  if (got < 0) fail("waitpid: ", std::strerror(errno));
  e = exit_of(got, status);
  return true;
}

ChildExit run_program(const std::vector<std::string>& argv, const std::string& log_path) {
  return wait_child(spawn(argv, log_path));
}

int try_lock(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, ": cannot open lock file: ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void close_lock(int fd) {
  if (fd >= 0) ::close(fd);
}

}  // namespace vitlab
