#include "test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "vitlab/config.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/safetensors.h"

namespace vitlab::test {

TempDir::TempDir() : path(make_temp_directory("vitlab-test-")) {}

TempDir::~TempDir() { remove_tree(path); }

Output run(const std::string& command) {
  Output out{0, ""};
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.text.append(buf.data(), n);
  int st = ::pclose(p);
  out.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return out;
}

void expect_one_line_error(const Output& o, const std::string& app, const std::string& what) {
  EXPECT_NE(o.status, 0) << o.text;
  EXPECT_LT(o.status, 128) << "killed by a signal: " << o.text;
  EXPECT_EQ(o.text.rfind(app + ": error: ", 0), 0u) << o.text;
  EXPECT_EQ(std::count(o.text.begin(), o.text.end(), '\n'), 1) << o.text;
  EXPECT_NE(o.text.find(what), std::string::npos) << o.text;
}

std::vector<std::string> fixture_dirs(const std::string& root) {
  std::vector<std::string> dirs;
  for (const auto& name : is_directory(root) ? list_directory(root) : std::vector<std::string>{})
    if (path_exists(join_path(join_path(root, name), "expected.safetensors"))) dirs.push_back(join_path(root, name));
  return dirs;
}

std::map<std::string, torch::Tensor> expected_of(const std::string& dir) {
  auto file = load_safetensors(join_path(dir, "expected.safetensors"));
  return {file.begin(), file.end()};
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble).cpu() - b).abs().max() / b.abs().max()).item<double>();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

bool kill_train_when(const std::vector<std::string>& args, const std::string& path) {
  const std::string train = VIT_TRAIN;
  std::vector<char*> argv{const_cast<char*>(train.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1), dup2(null, 2);
    execv(train.c_str(), argv.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!path_exists(path) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

void expect_two_processes_match_one(const std::string& config, const std::string& backend) {
  TempDir dir;
  write_file(dir / "c.json", config);
  const std::string train = std::string(VIT_TRAIN) + " --config " + dir / "c.json" + " --out ";
  Output one = run(train + dir / "one");
  ASSERT_EQ(one.status, 0) << one.text;
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port());
  Output two = run("RANK=1 " + env + " " + train + dir / "two > " + dir / "rank1.log 2>&1 & RANK=0 " + env + " " +
                   train + dir / "two; status=$?; wait $! || status=1; exit $status");
  ASSERT_EQ(two.status, 0) << two.text << read_text(dir / "rank1.log");

  const json a = read_json_file(dir / "one/result.json"), b = read_json_file(dir / "two/result.json");
  EXPECT_EQ(b["distributed"]["world_size"], 2);
  EXPECT_EQ(b["distributed"]["backend"], backend);
  const size_t last = a["history"].size() - 1;
  EXPECT_NEAR(a["history"][last]["train_loss"].get<double>(), b["history"][last]["train_loss"].get<double>(), 1e-5);
  auto wa = load_safetensors(dir / "one/checkpoint/model.safetensors");
  auto wb = load_safetensors(dir / "two/checkpoint/model.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    auto [name, t] = wa[i];
    auto u = wb[i].second;
    ASSERT_EQ(wb[i].first, name);
    if (name.find("attn.qkv.bias") != std::string::npos) {
      // The key bias adds the same amount to every score of a query, which softmax ignores: its
      // gradient is zero up to rounding, and Adam scales that rounding noise up to full steps.
      // It differs between any two summation orders; compare the query and value biases.
      const int64_t d = t.size(0) / 3;
      t = torch::cat({t.narrow(0, 0, d), t.narrow(0, 2 * d, d)});
      u = torch::cat({u.narrow(0, 0, d), u.narrow(0, 2 * d, d)});
    }
    const double scale = t.abs().max().item<double>() + 1e-12;
    EXPECT_LT((t - u).abs().max().item<double>() / scale, 1e-4) << name;  // summation order only
  }
}

}  // namespace vitlab::test
