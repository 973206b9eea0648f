#pragma once
// What every app's command line shares, in vitlab's words: numeric flags checked on their text
// with one-line messages that name the allowed range (CLI11's own range check prints the
// largest double in full), and any command-line error reported as one line,
// "NAME: error: --flag: ...", with exit status 2 (1 is for errors while running).
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

namespace vitlab::cli {

inline std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// An integer flag in [lo, hi]: "must be a positive integer, got '0'".
inline CLI::Validator integer(long long lo, long long hi = std::numeric_limits<int>::max()) {
  const long long top = std::numeric_limits<int>::max();
  const std::string range = "[" + std::to_string(lo) + "," + std::to_string(hi) + "]";
  const std::string want = lo == 1 && hi == top   ? "a positive integer"
                           : lo == 0 && hi == top ? "a non-negative integer"
                                                  : "an integer in " + range;
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (s.empty() || used != s.size() || v < lo || v > hi) return "must be " + want + ", got '" + s + "'";
        return "";
      },
      hi == top ? ">=" + std::to_string(lo) : range);
}

// A finite number in [lo, hi]: "must be a number in [0,1], got '2'".
inline CLI::Validator number(double lo, double hi = std::numeric_limits<double>::infinity()) {
  const std::string range =
      std::isinf(hi) ? ">=" + format_number(lo) : "[" + format_number(lo) + "," + format_number(hi) + "]";
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (s.empty() || used != s.size() || !std::isfinite(v) || v < lo || v > hi)
          return "must be a number " + std::string(std::isinf(hi) ? "" : "in ") + range + ", got '" + s + "'";
        return "";
      },
      range);
}

// --plugin PATH, repeatable: attention variants from a shared library, loaded with those of
// VITLAB_PLUGINS by vitlab::load_plugins (attention/plugins.h) before any config is read.
inline void add_plugin_flag(CLI::App& app, std::vector<std::string>& paths) {
  app.add_option("--plugin", paths,
                 "Shared library of attention variants (repeatable; also VITLAB_PLUGINS, colon-separated)");
}

// Parses the command line; --help prints the help. Returns -1 to go on, else the exit status.
inline int parse(CLI::App& app, const char* name, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::fprintf(stderr, "%s: error: %s (see --help)\n", name, e.what());
    return 2;
  }
  return -1;
}

}  // namespace vitlab::cli

// In main(), in place of CLI11_PARSE.
#define VITLAB_CLI_PARSE(app, name, argc, argv)                                  \
  do {                                                                           \
    const int vitlab_cli_status = vitlab::cli::parse((app), (name), (argc), (argv)); \
    if (vitlab_cli_status >= 0) return vitlab_cli_status;                         \
  } while (0)
