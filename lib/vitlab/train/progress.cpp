#include "vitlab/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace vitlab {

Progress::Progress() : live_(::isatty(STDERR_FILENO)), last_(std::chrono::steady_clock::now()) {}

bool Progress::due() {
  if (!live_) return false;
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(200)) return false;
  last_ = now;
  return true;
}

void Progress::update(const std::string& line) {
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

void Progress::epoch_done(const std::string& line) {
  if (live_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

std::string format_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

}  // namespace vitlab
