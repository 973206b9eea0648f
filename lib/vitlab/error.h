#pragma once
// One exception type for every user-facing failure. Its message is a single line that names
// the file, field or flag at fault; the apps print it and exit non-zero.
#include <sstream>
#include <stdexcept>
#include <string>

namespace vitlab {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

}  // namespace vitlab
