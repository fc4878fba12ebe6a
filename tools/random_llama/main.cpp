// mbok-make-random-llama: writes a random LLaMA-family checkpoint as a Hugging Face model
// directory (config.json, model.safetensors or index + shards, tokenizer.json if given), for
// benchmarks and tests. Tensors are generated and written a chunk at a time, so a 7B-shaped
// checkpoint needs a few MB of memory. Exit codes: 0 done, 2 bad options or files, 1 other.

#include <CLI/CLI.hpp>
#include <common/progress_bar.hpp>
#include <common/tool_errors.hpp>
#include <mbok/llama/hf_writer.hpp>

#include <cctype>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

namespace {

using mbok::llama::LlamaConfig;

LlamaConfig preset(const std::string& name) {
  LlamaConfig c;
  c.rms_norm_eps = 1e-5;
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  if (name == "tiny") {  // seconds to convert: tests
    c.vocab_size = 512;
    c.hidden_size = 64;
    c.intermediate_size = 176;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 256;
  } else if (name == "1b") {  // the decode benchmark's 1B shapes (TinyLlama-like, MHA)
    c.vocab_size = 32000;
    c.hidden_size = 2048;
    c.intermediate_size = 5632;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 32;
    c.max_position_embeddings = 2048;
  } else if (name == "7b") {  // LLaMA-2-7B
    c.vocab_size = 32000;
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 32;
    c.max_position_embeddings = 4096;
  } else {
    throw mbok::InvalidArgument("mbok: --preset must be tiny, 1b or 7b, got '" + name + "'");
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  return c;
}

// "0", "123", "500MB", "2GB", "1.5GiB" (HF's units: KB/MB/GB powers of 1000, KiB/MiB/GiB of 1024).
std::uint64_t parse_size(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double scale = 0;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "KB")
    scale = 1e3;
  else if (unit == "MB")
    scale = 1e6;
  else if (unit == "GB")
    scale = 1e9;
  else if (unit == "KIB")
    scale = 1024.0;
  else if (unit == "MIB")
    scale = 1024.0 * 1024;
  else if (unit == "GIB")
    scale = 1024.0 * 1024 * 1024;
  if (used == 0 || scale == 0 || !(value >= 0))
    throw mbok::InvalidArgument(
        "mbok: --shard-size '" + text +
        "' is not a size (bytes, or a number with KB, MB, GB, KiB, MiB, GiB)");
  return static_cast<std::uint64_t>(value * scale);
}

int fail(const std::string& message) {
  return mbok_examples::report_error("mbok-make-random-llama", message);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Writes a random LLaMA-family checkpoint as a Hugging Face model directory (config.json,\n"
      "model.safetensors or model.safetensors.index.json + shards, tokenizer.json). Weights are\n"
      "N(0, std^2), norm weights near 1; the same seed gives the same checkpoint.",
      "mbok-make-random-llama"};
  std::string out_dir, config_file, preset_name, dtype_name = "bf16", shard_size = "5GB",
                                                 tokenizer_file;
  std::uint64_t seed = 0;
  float std_dev = 0.02f;
  bool quiet = false;
  app.add_option("output", out_dir, "directory to write (created; its model files are replaced)")
      ->required();
  auto* cfg =
      app.add_option("--config", config_file, "a Hugging Face config.json giving the shapes");
  auto* pre = app.add_option("--preset", preset_name,
                             "tiny, 1b (16 x 2048/5632) or 7b (LLaMA-2-7B shapes)");
  cfg->excludes(pre);
  app.add_option("--dtype", dtype_name, "bf16 (default), f16 or f32");
  app.add_option(
      "--shard-size", shard_size,
      "largest shard, e.g. 2GB or 500MiB (default 5GB, as HF); 0 writes one model.safetensors");
  app.add_option("--seed", seed, "random seed (default 0)");
  app.add_option("--std", std_dev, "standard deviation of the weights (default 0.02)");
  app.add_option("--tokenizer", tokenizer_file, "a tokenizer.json to copy into the directory");
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }
  return mbok_examples::run_reporting_errors("mbok-make-random-llama", [&] {
    if (cfg->count() == 0 && pre->count() == 0)
      return fail("one of --config or --preset is required");
    const LlamaConfig config =
        cfg->count() ? LlamaConfig::from_file(config_file) : preset(preset_name);
    mbok::DType dtype;
    if (dtype_name == "bf16")
      dtype = mbok::DType::bf16;
    else if (dtype_name == "f16")
      dtype = mbok::DType::f16;
    else if (dtype_name == "f32")
      dtype = mbok::DType::f32;
    else
      return fail("--dtype must be bf16, f16 or f32, got '" + dtype_name + "'");
    const std::uint64_t shard_bytes = parse_size(shard_size);
    std::optional<std::string> tokenizer;
    if (!tokenizer_file.empty()) tokenizer = mbok::HfCheckpoint::read_text(tokenizer_file);

    const auto tensors = mbok::llama::random_llama_tensors(config, seed, std_dev);
    constexpr std::uint64_t kMiB = 1 << 20;
    std::uint64_t total = 0;
    for (const auto& t : tensors) total += t.numel() * mbok::dtype_size(dtype);
    mbok_examples::ProgressBar bar(std::cerr, "write", static_cast<std::size_t>(total / kMiB + 1),
                                   !quiet && mbok_examples::ProgressBar::stderr_is_terminal());
    const auto result = mbok::llama::write_hf_checkpoint(
        out_dir, config, tensors, dtype, shard_bytes, tokenizer,
        [&](std::uint64_t done, std::uint64_t, const std::string& name) {
          if (!quiet) bar.update(static_cast<std::size_t>(done / kMiB), name);
        });
    if (!quiet) bar.finish();
    std::cout << out_dir << ": " << tensors.size() << " tensors, " << mbok::dtype_name(dtype)
              << ", " << result.tensor_bytes << " bytes in " << result.weight_files.size()
              << " file" << (result.weight_files.size() == 1 ? "" : "s") << "\n";
    return 0;
  });
}
