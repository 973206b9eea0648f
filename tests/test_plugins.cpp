// Attention plugins as the apps load them: the example plugin (examples/attention_plugin,
// talking-heads attention) through --plugin and VITLAB_PLUGINS, what a run records of it, its
// checkpoint opened without it, and every way a plugin can be wrong, each one line naming the file.
#include <gtest/gtest.h>

#include "test_util.h"
#include "vitlab/config.h"
#include "vitlab/io/files.h"
#include "vitlab/io/sha256.h"

using namespace vitlab;
using vitlab::test::expect_one_line_error;
using vitlab::test::Output;
using vitlab::test::run;
using vitlab::test::TempDir;
using vitlab::test::write_file;

namespace {

const std::string kTrain = VIT_TRAIN, kEval = VIT_EVAL, kInfo = VIT_INFO, kSweep = VIT_SWEEP;
const std::string kPlugin = TEST_PLUGIN_TALKING_HEADS;

TEST(Sha256, MatchesTheStandardsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Plugins, EveryAppThatBuildsModelsLoadsThem) {
  Output o = run(kInfo + " --plugin " + kPlugin + " --set model.attention=talking_heads --json");
  ASSERT_EQ(o.status, 0) << o.text;
  const json info = json::parse(o.text);
  EXPECT_EQ(info["attention"]["name"], "talking_heads");
  // Per layer, MHA's count plus the two h x h mixings (the default 4 heads).
  o = run(kInfo + " --set model.attention=mha --json");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(info["params"]["attention_per_layer"].get<int64_t>(),
            json::parse(o.text)["params"]["attention_per_layer"].get<int64_t>() + 2 * 4 * 4);
  // The same from the environment; without either, the name is unknown.
  o = run("VITLAB_PLUGINS=" + kPlugin + " " + kInfo + " --set model.attention=talking_heads --json");
  EXPECT_EQ(o.status, 0) << o.text;
  expect_one_line_error(run(kInfo + " --set model.attention=talking_heads"), "vit_info",
                        "unknown attention 'talking_heads'");
}

TEST(Plugins, ARunRecordsItsPluginAndItsCheckpointNeedsIt) {
  TempDir dir;
  const std::string args = " --set model.attention=talking_heads --set data.spec=synthetic"
                           " --set data.synthetic.train=512 --set data.synthetic.test=128 --set data.val_size=0"
                           " --set train.epochs=1 --set model.depth=2 --set model.dim=32 --threads 1";
  Output o = run(kTrain + " --plugin " + kPlugin + args + " --out " + dir / "run");
  ASSERT_EQ(o.status, 0) << o.text;
  const json r = read_json_file(dir / "run/result.json");
  char real[4096];
  ASSERT_NE(::realpath(kPlugin.c_str(), real), nullptr);
  EXPECT_EQ(r["model"]["attention"]["plugin"], real);
  ASSERT_EQ(r["plugins"].size(), 1u);
  EXPECT_EQ(r["plugins"][0]["path"], real);
  EXPECT_EQ(r["plugins"][0]["sha256"], sha256_hex(read_text(kPlugin)));
  EXPECT_EQ(r["plugins"][0]["attentions"], json::array({"talking_heads"}));

  expect_one_line_error(run(kEval + " --checkpoint " + dir / "run/checkpoint"), "vit_eval",
                        "unknown attention 'talking_heads', which comes from the plugin " + std::string(real) +
                            ": load it with --plugin or VITLAB_PLUGINS");
  o = run(kEval + " --plugin " + kPlugin + " --checkpoint " + dir / "run/checkpoint --out " + dir / "eval.json");
  EXPECT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(read_json_file(dir / "eval.json")["metrics"]["top1"], r["metrics"]["top1"]);
  // Resuming the finished run with the plugin found through the environment is the same run.
  o = run("VITLAB_PLUGINS=" + kPlugin + " " + kTrain + args + " --out " + dir / "run --resume");
  EXPECT_EQ(o.status, 0) << o.text;
}

TEST(Plugins, SweepRunsInheritThem) {
  TempDir dir;
  write_file(dir / "spec.json",
             json{{"set", {{"model.attention", "talking_heads"}, {"model.depth", 2}, {"model.dim", 32},
                           {"data.spec", "synthetic"}, {"data.synthetic.train", 512}, {"data.synthetic.test", 128},
                           {"data.val_size", 0}, {"train.epochs", 1}}},
                  {"axes", json::array({{{"train.seed", {0, 1}}}})}}
                 .dump());
  Output o = run(kSweep + " " + dir / "spec.json --plugin " + kPlugin + " --out " + dir / "sweep --jobs 2 --threads 1");
  ASSERT_EQ(o.status, 0) << o.text;
  for (const char* run_name : {"seed-0", "seed-1"}) {
    const json r = read_json_file(dir / "sweep/runs/" + std::string(run_name) + "/result.json");
    EXPECT_EQ(r["attention"]["name"], "talking_heads") << run_name;
    EXPECT_EQ(r["plugins"].size(), 1u) << run_name;
  }
}

TEST(Plugins, BadPluginsAreOneLineErrors) {
  TempDir dir;
  const std::string info = kInfo + " --set model.attention=mha --plugin ";
  expect_one_line_error(run(info + dir / "missing.so"), "vit_info", "--plugin " + dir / "missing.so" + ": no such file");
  write_file(dir / "text.so", "not a library\n");
  expect_one_line_error(run(info + dir / "text.so"), "vit_info",
                        "--plugin " + dir / "text.so" + ": cannot load it as a shared library");
  expect_one_line_error(run(info + TEST_LIBRARY_WITHOUT_PLUGIN + ""), "vit_info",
                        ": registers no attention (a vitlab plugin has VITLAB_REGISTER_ATTENTION lines)");
  expect_one_line_error(run(info + TEST_PLUGIN_DUPLICATE_NAME + ""), "vit_info",
                        ": registers attention 'mha', which vitlab has built in");
  expect_one_line_error(run(info + TEST_PLUGIN_OTHER_ABI + ""), "vit_info",
                        ": built for vitlab's plugin ABI 2, this vitlab has 1: rebuild it against this vitlab");
  expect_one_line_error(run("VITLAB_PLUGINS=" + dir / "missing.so " + kInfo + ""), "vit_info",
                        "VITLAB_PLUGINS: " + dir / "missing.so" + ": no such file");
  // Two plugins registering one name: the second names the first.
  expect_one_line_error(run(info + kPlugin + " --plugin " + TEST_PLUGIN_TALKING_HEADS_COPY + ""), "vit_info",
                        "registers attention 'talking_heads', which plugin ");
}

}  // namespace
