// vit_convert: compress a trained MHA checkpoint into Tucker, GQA or MLA attention, or write it as a
// timm or Hugging Face transformers checkpoint.

#include "vitlab/analysis/compress.h"
#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/cli.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/hf.h"
#include "vitlab/io/timm.h"
#include "vitlab/results/run_record.h"
#include "vitlab/train/checkpoint.h"

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{"Convert an MHA checkpoint to tucker (truncated HOSVD of T_qk and T_ov, optional HOOI sweeps), gqa "
               "(key/value heads mean-pooled within groups) or mla (truncated SVD of the key/value map). Writes a "
               "checkpoint that vit_eval evaluates and vit_train --init-from fine-tunes, and DIR/conversion.json. "
               "--to timm writes the model as a timm checkpoint (model.safetensors and timm's config.json), --to hf as a "
               "Hugging Face transformers directory (model.safetensors, config.json, preprocessor_config.json)."};
  std::string checkpoint, to, ranks, out;
  int64_t kv_heads = 0, kv_rank = 0;
  double energy = 0;
  int hooi = 0, threads = 0;
  app.add_option("--checkpoint", checkpoint, "MHA checkpoint directory (or its model.safetensors)")->required();
  app.add_option("--to", to, "tucker, gqa, mla, timm or hf")
      ->required()
      ->check(CLI::IsMember({"tucker", "gqa", "mla", "timm", "hf"}));
  app.add_option("--ranks", ranks, "tucker: JSON ranks, e.g. '{\"q\":24,\"k\":24,\"v\":24,\"o\":24}' "
                                   "(head_qk, head_ov default to the heads; q, k, v, o to d)");
  app.add_option("--kv-heads", kv_heads, "gqa: key/value heads (divides the heads)")->check(vitlab::cli::integer(1));
  app.add_option("--kv-rank", kv_rank, "mla: latent key/value rank")->check(vitlab::cli::integer(1));
  app.add_option("--energy", energy, "tucker, mla: smallest ranks holding this fraction of every layer's energy")
      ->check(vitlab::cli::number(0, 1));
  app.add_option("--hooi", hooi, "tucker: HOOI sweeps after the HOSVD")->check(vitlab::cli::integer(0));
  app.add_option("--out", out, "Checkpoint directory to write")->required();
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->check(vitlab::cli::integer(0));
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_convert", argc, argv);

  return vitlab::run_app("vit_convert", [&] {
    vitlab::load_plugins(plugins);
    vitlab::configure_threads(threads);
    if (to == "timm" || to == "hf") {
      if (!ranks.empty() || kv_heads > 0 || kv_rank > 0 || energy > 0 || hooi > 0)
        vitlab::fail("--to ", to, ": writes the model as it is; --ranks, --kv-heads, --kv-rank, --energy and --hooi "
                     "do not apply");
      vitlab::ViT model = vitlab::load_model(checkpoint);
      if (to == "timm") {
        vitlab::save_timm_checkpoint(out, model);
        std::printf("timm checkpoint: %s (architecture %s)\n", out.c_str(),
                    vitlab::timm_config_from_model(model->cfg)["architecture"].get<std::string>().c_str());
      } else {
        vitlab::save_hf_checkpoint(out, model);
        std::printf("transformers checkpoint: %s (%s)\n", out.c_str(),
                    vitlab::hf_config_from_model(model->cfg)["architectures"][0].get<std::string>().c_str());
      }
      return 0;
    }
    const int given = !ranks.empty() + (kv_heads > 0) + (kv_rank > 0) + (energy > 0);
    if (given != 1) vitlab::fail("--to ", to, ": give exactly one of --ranks, --kv-heads, --kv-rank, --energy");
    vitlab::ViT src = vitlab::load_model(checkpoint);
    vitlab::AttentionConfig target;
    if (energy > 0) {
      target = vitlab::attention_for_energy(src, to, energy);
    } else if (to == "tucker") {
      if (ranks.empty()) vitlab::fail("--to tucker: give --ranks or --energy");
      const vitlab::json r = vitlab::json::parse(ranks, nullptr, /*allow_exceptions=*/false);
      if (!r.is_object()) vitlab::fail("--ranks: '", ranks, "' is not a JSON object");
      target = {"tucker", vitlab::json{{"ranks", r}}};
    } else if (to == "gqa") {
      if (kv_heads == 0) vitlab::fail("--to gqa: give --kv-heads");
      target = {"gqa", vitlab::json{{"kv_heads", kv_heads}}};
    } else {
      if (kv_rank == 0) vitlab::fail("--to mla: give --kv-rank or --energy");
      target = {"mla", vitlab::json{{"kv_rank", kv_rank}, {"q_rank", 0}}};
    }
    vitlab::json report;
    vitlab::ViT dst = vitlab::compress_model(src, target, hooi, &report);
    report["source"] = checkpoint;
    report["created"] = vitlab::utc_timestamp();
    vitlab::save_checkpoint(out, dst, nullptr, nullptr, vitlab::json{{"converted_from", checkpoint}});
    vitlab::atomic_write(vitlab::join_path(out, "conversion.json"), vitlab::dump_json(report, 1) + "\n");
    double qk = 0, ov = 0;
    for (const auto& l : report["layers"])
      qk = std::max(qk, l["qk_error"].get<double>()), ov = std::max(ov, l["ov_error"].get<double>());
    std::printf("%s: attention %s, %lld -> %lld attention parameters; worst layer's relative error T_qk %.4f, "
                "T_ov %.4f\ncheckpoint: %s\n",
                to.c_str(), vitlab::dump_json(report["attention"]).c_str(),
                static_cast<long long>(report["attention_params"]["source"].get<int64_t>()),
                static_cast<long long>(report["attention_params"]["converted"].get<int64_t>()), qk, ov, out.c_str());
    return 0;
  });
}
