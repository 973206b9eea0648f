#pragma once
// Splitting of the small delimited strings vitlab reads: dotted config paths, comma lists,
// PATH.
#include <string>
#include <vector>

namespace vitlab {

// "a.b..c" on '.' -> {"a", "b", "", "c"}: empty parts are kept, so callers can reject them.
inline std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

}  // namespace vitlab
