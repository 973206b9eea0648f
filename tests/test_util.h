#pragma once
// Helpers shared by the tests: scratch directories and running the apps as a user would.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace vitlab::test {

// A fresh directory under the system temp dir, removed when the object goes away.
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

struct Output {
  int status;  // exit status, or 128 + signal
  std::string text;  // stdout and stderr together
};
Output run(const std::string& command);
// A failed command: non-zero exit, exactly one line "APP: error: ..." that contains `what`.
void expect_one_line_error(const Output& o, const std::string& app, const std::string& what);

void write_file(const std::string& path, const std::string& bytes);

// Starts vit_train with `args` (its output discarded), kills it with SIGKILL as soon as `path`
// exists, and returns whether it was killed (false: it ended first, or 120 s passed).
bool kill_train_when(const std::vector<std::string>& args, const std::string& path);

// The message of the vitlab::Error that `f` throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

// Parity fixtures (experiments/*_parity/make_fixtures.py): the case folders under `root` that
// hold an expected.safetensors, and that file's tensors by name.
std::vector<std::string> fixture_dirs(const std::string& root);
std::map<std::string, torch::Tensor> expected_of(const std::string& dir);
// max |a - b| / max |b|: the relative error of the parity checks ("within 1e-4 relative").
double relative_error(const torch::Tensor& a, const torch::Tensor& b);

// A free TCP port on the loopback interface (MASTER_PORT for several processes).
int free_port();

// Trains the run of `config` (JSON) with vit_train twice, in one process and in two (RANK 0 and
// 1, torchrun's variables, `backend` expected in the result), and expects the same training loss
// and weights up to summation order.
void expect_two_processes_match_one(const std::string& config, const std::string& backend);

}  // namespace vitlab::test
