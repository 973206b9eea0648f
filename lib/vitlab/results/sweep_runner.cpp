#include "vitlab/results/sweep_runner.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/text.h"
#include "vitlab/train/progress.h"

namespace vitlab {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int sig) { g_stop = sig; }

// Installs SIGINT/SIGTERM handlers without SA_RESTART, so a blocking waitpid returns EINTR.
struct StopSignals {
  struct sigaction old_int {}, old_term {};
  StopSignals() {
    g_stop = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

// The line that says why a run failed: vit_train's "vit_train: error: ..." line, else the
// last line of its log.
std::string failure_line(const std::string& log_path) {
  if (!is_regular_file(log_path)) return "";
  const std::string text = read_text(log_path);
  std::string last, error;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find("\r") != std::string::npos) line = line.substr(line.rfind('\r') + 1);
    if (!line.empty()) last = line;
    if (line.find("error: ") != std::string::npos) error = line;
    start = end + 1;
  }
  return error.empty() ? last : error;
}

struct Active {
  size_t run;  // index into runs
  int slot;
  int lock_fd;
  std::chrono::steady_clock::time_point start;
  RunState state;
};

}  // namespace

std::vector<std::string> parse_devices(const std::string& text, const std::string& flag) {
  std::vector<std::string> out;
  for (std::string d : split(text, ',')) {
    if (d.empty()) fail(flag, " ", text, ": empty device in the list");
    if (d.find_first_not_of("0123456789") == std::string::npos) d = "cuda:" + d;
    const bool cuda_n = d.rfind("cuda:", 0) == 0 && d.size() > 5 &&
                        d.find_first_not_of("0123456789", 5) == std::string::npos;
    if (d != "cpu" && d != "cuda" && !cuda_n)
      fail(flag, " ", text, ": '", d, "' is not a device (cpu, cuda, cuda:N or N)");
    out.push_back(d);
  }
  return out;
}

SweepOutcome run_sweep(const SweepSpec& spec, const std::vector<SweepRun>& runs, const std::vector<json>& accounting,
                       const SweepOptions& opt) {
  if (opt.jobs < 1) fail("--jobs ", opt.jobs, ": must be at least 1");
  ensure_directory(join_path(opt.dir, "runs"), "--out");
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = opt.threads > 0 ? opt.threads : std::max(1, cores / opt.jobs);
  auto record = [&] { write_sweep_record(opt.dir, sweep_record(spec, runs, accounting, opt.dir)); };

  SweepOutcome out;
  std::vector<size_t> todo;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!opt.shard.has(runs[i].index)) {
      ++out.other;
      continue;
    }
    const RunState s = read_run_state(run_directory(opt.dir, runs[i].name));
    if (s.state == "done") ++out.done;
    else if (s.state == "running") ++out.other;
    else if (s.state == "failed" && !opt.retry_failed) ++out.failed;
    else todo.push_back(i);
  }
  const int total_mine = static_cast<int>(todo.size()) + out.done + out.failed;
  std::printf("sweep %s: %zu runs, %d in this shard: %d done, %d failed, %zu to run (%d at a time, %d threads each)\n",
              opt.dir.c_str(), runs.size(), total_mine, out.done, out.failed, todo.size(), opt.jobs, threads);
  std::fflush(stdout);
  record();

  StopSignals signals;
  std::map<pid_t, Active> active;
  std::vector<bool> slot_busy(opt.jobs, false);
  size_t next = 0;
  bool stopping = false;
  double finished_seconds = 0;
  int finished_here = 0;
  const auto sweep_start = std::chrono::steady_clock::now();

  auto start_run = [&](size_t i, int slot) {
    const SweepRun& run = runs[i];
    const std::string dir = run_directory(opt.dir, run.name);
    ensure_directory(dir, "--out");
    const int fd = try_lock(run_lock_path(dir));
    if (fd < 0) {  // another sweep process took it meanwhile
      ++out.other;
      return false;
    }
    RunState s = read_run_state(dir);
    if (s.state == "done") {
      close_lock(fd);
      ++out.done;
      return false;
    }
    atomic_write(join_path(dir, "sweep_config.json"), dump_json(run.config, 2) + "\n");
    std::vector<std::string> argv{opt.trainer, "--config", join_path(dir, "sweep_config.json"), "--out", dir,
                                  "--resume", "--threads", std::to_string(threads)};
    if (!opt.devices.empty()) {
      s.device = opt.devices[slot % opt.devices.size()];
      argv.insert(argv.end(), {"--device", s.device});
    }
    s.state = "running";
    s.error.clear();
    s.attempts += 1;
    write_run_state(dir, s);
    const pid_t pid = spawn(argv, join_path(dir, "train.log"), fd);
    active[pid] = Active{i, slot, fd, std::chrono::steady_clock::now(), s};
    slot_busy[slot] = true;
    std::printf("start  %s%s%s\n", run.name.c_str(), s.device.empty() ? "" : " on ", s.device.c_str());
    std::fflush(stdout);
    record();
    return true;
  };

  while (true) {
    // Fill free slots, unless stopping.
    for (int slot = 0; slot < opt.jobs && !g_stop; ++slot)
      while (!slot_busy[slot] && next < todo.size()) start_run(todo[next++], slot);
    if (active.empty()) break;

    if (g_stop && !stopping) {  // SIGINT/SIGTERM: stop every run; they resume from their checkpoints
      stopping = true;
      for (auto& [pid, a] : active) ::kill(pid, SIGTERM);
    }
    ChildExit e;
    if (!wait_any_child(e)) continue;  // interrupted by a signal: look at g_stop again
    auto it = active.find(e.pid);
    if (it == active.end()) continue;
    Active a = it->second;
    active.erase(it);
    slot_busy[a.slot] = false;
    const SweepRun& run = runs[a.run];
    const std::string dir = run_directory(opt.dir, run.name);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - a.start).count();
    RunState s = a.state;
    s.seconds += secs;
    const bool have_result = is_regular_file(join_path(dir, "result.json"));
    std::string line;
    if (e.ok() && have_result) {
      s.state = "done";
      ++out.done;
      finished_seconds += secs;
      ++finished_here;
      const json r = read_json_file(join_path(dir, "result.json"));
      char buf[96];
      std::snprintf(buf, sizeof buf, "top1 %.2f%%  %.0f img/s", r["metrics"]["top1"].get<double>(),
                    r["timing"]["images_per_s"].get<double>());
      line = buf;
    } else if (g_stop && (e.signal == SIGTERM || e.signal == SIGINT || e.code == 128 + SIGINT)) {
      s.state = "interrupted";
      line = "stopped; rerun the same command to resume it";
    } else {
      s.state = "failed";
      ++out.failed;
      s.error = failure_line(join_path(dir, "train.log"));
      if (e.signal != 0 || s.error.empty()) s.error = e.describe() + (s.error.empty() ? "" : ": " + s.error);
      line = s.error + " (log: " + join_path(dir, "train.log") + ")";
    }
    write_run_state(dir, s);
    close_lock(a.lock_fd);
    record();
    const int left = static_cast<int>(todo.size() - next + active.size());
    std::string eta;
    if (finished_here > 0 && left > 0 && !g_stop)
      eta = "  ETA " + format_duration(finished_seconds / finished_here * left / std::min(opt.jobs, left));
    std::printf("%-6s %s  %s  (%s)  [%d/%d done, %d failed]%s\n", s.state.c_str(), run.name.c_str(), line.c_str(),
                format_duration(secs).c_str(), out.done, total_mine, out.failed, eta.c_str());
    std::fflush(stdout);
  }
  out.interrupted = g_stop != 0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - sweep_start).count();
  std::printf("sweep %s: %d done, %d failed of %d in this shard%s (%s)\n", opt.dir.c_str(), out.done, out.failed,
              total_mine, out.interrupted ? ", interrupted: rerun the same command to resume" : "",
              format_duration(wall).c_str());
  return out;
}

}  // namespace vitlab
