#include "vitlab/results/run_record.h"

#include <unistd.h>

#include <ctime>

#include "vitlab/compat.h"
#include "vitlab/device.h"
#include "vitlab/git_version.h"
#include "vitlab/io/files.h"

namespace vitlab {

std::string git_commit() { return VITLAB_GIT_COMMIT; }

std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json host_record(const torch::Device& device, int threads) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return json{{"hostname", host}, {"device", device.str()}, {"device_name", device_name(device)},
              {"libtorch", compat::torch_version()}, {"threads", threads}};
}

void write_result(const std::string& dir, const json& record) {
  atomic_write(join_path(dir, "result.json"), dump_json(record, 2) + "\n");
}

}  // namespace vitlab
