#pragma once
// Child processes: vit_sweep runs each training run as a child (a crash, an out-of-memory kill
// or a bad setting ends that run, not the sweep) and vit_plot runs gnuplot.
#include <sys/types.h>

#include <string>
#include <vector>

namespace vitlab {

struct ChildExit {
  pid_t pid = -1;
  int code = -1;   // exit status when it exited, else -1
  int signal = 0;  // the signal that killed it, else 0
  bool ok() const { return code == 0; }
  std::string describe() const;  // "exit status 1", "killed by signal 9 (Killed)"
};

// Starts argv[0] (a path, or a name looked up in PATH) with stdin from /dev/null and stdout and
// stderr appended to `log_path` ("" keeps the parent's). `keep_fd` (-1: none) stays open in the
// child, so a lock held through it lives as long as the child. The child gets SIGTERM when this
// process dies, so a killed sweep leaves no orphaned runs.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path, int keep_fd = -1);
ChildExit wait_child(pid_t pid);  // pid -1: any child
// Waits for any child; false when a signal handler interrupted the wait first.
bool wait_any_child(ChildExit& e);
// Runs to completion; the exit of argv[0], or code 127 when it cannot be started.
ChildExit run_program(const std::vector<std::string>& argv, const std::string& log_path);

// The full path of `name` in PATH, or "" when it is not there.
std::string find_in_path(const std::string& name);
// The directory of the running executable (for its sibling apps).
std::string executable_directory();

// An exclusive advisory lock on `path` (created if missing): the descriptor, or -1 when another
// process holds it. Released by close_lock or when every process holding it has ended.
int try_lock(const std::string& path);
void close_lock(int fd);

}  // namespace vitlab
