#pragma once
// The options of mbok-run's subcommands, with their defaults.

#include <cstdint>
#include <string>

namespace mbok::tools {

struct RunOptions {
  std::string model;  // HF checkpoint directory or mbok file
  std::string activations = "int8";
  std::string head = "float";  // the output head in memory: float or int8
  int threads = 0;             // 0: OpenMP's default
  bool quiet = false;
  // perplexity
  std::string text;
  std::int64_t context = 0;
  // generate
  std::string prompt;
  std::int64_t tokens = 128;
  double temperature = 0;
  std::size_t top_k = 0;
  double top_p = 1;
  std::uint64_t seed = 0;
  bool no_special_tokens = false;
  bool ignore_eos = false;
  // bench (-n is `tokens`)
  std::int64_t bench_prompt = 512;
  int reps = 3;
};

}  // namespace mbok::tools
