#pragma once
// What every vitlab executable shares: one-line errors and a non-zero exit instead of an
// abort or an exception dump, and the config file + --set overrides.
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

// Call first in main(). LibTorch's OpenMP threads spin after each parallel region and starve
// OpenBLAS's own GEMM threads: on the 2-core CPU a training step runs ~2.4x slower
// (344 vs 822 img/s, see README). libgomp reads OMP_WAIT_POLICY only at load time, so when it
// is unset this sets it to PASSIVE and re-executes the program once. Setting the variable
// yourself (to anything) skips this.
void prefer_passive_openmp(char** argv);

// Runs `body`; a vitlab::Error, LibTorch error or other exception becomes "NAME: error: ..."
// on stderr and exit status 1. A write past a file-size limit (ulimit -f) is one of these:
// SIGXFSZ is ignored, so the write fails instead of the process dying.
int run_app(const char* name, const std::function<int()>& body);
// The one-line message of any exception (LibTorch's without its backtrace).
std::string error_message(const std::exception& e);

// Reads the run config file (or the defaults when `path` is empty), replaces its model section
// by `model` when given (fine-tuning: the checkpoint's model), applies the --set assignments in
// order and parses the result strictly.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& sets,
                          const json* model = nullptr);

}  // namespace vitlab
