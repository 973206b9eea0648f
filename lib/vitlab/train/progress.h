#pragma once
// Progress of a long run: on a terminal, one live line (epoch, step, loss, accuracy, img/s,
// ETA) redrawn in place on stderr; otherwise nothing between epochs, so logs and CI stay quiet.
// Epoch summaries always go to stdout.
#include <chrono>
#include <string>

namespace vitlab {

class Progress {
 public:
  Progress();  // live when stderr is a terminal
  // True when the live line is due for a redraw (at most ~5 times a second).
  bool due();
  void update(const std::string& line);
  void epoch_done(const std::string& line);

 private:
  bool live_;
  std::chrono::steady_clock::time_point last_;
};

std::string format_duration(double seconds);  // "1h02m", "3m12s", "45s"

}  // namespace vitlab
