// Model-scale decode: tokens/s of the linear layers of a transformer stack, one token at a
// time, with the weights in DRAM, against the read-bandwidth limit measured in the same run.
//
// Models (linear layers only; attention, norms and the embedding are left out):
// - llama7b: 32 blocks of q, k, v, o (4096x4096), gate, up (11008x4096), down (4096x11008)
// - llama1b: 16 blocks of q, k, v, o (2048x2048), gate, up (5632x2048), down (2048x5632)
// Each layer is a `BooleanLinear<float>` with K kernels of random bits (splitmix64 straight
// into the packed rows, padding zero; no SVID) and random positive scales, called through
// `forward_int8` (int8 activations) or `forward` (float activations). The dense f32 baseline
// runs Eigen's GEMV (baselines.cpp, -march=native) on the same shapes.
//
// Per (model, K, activations, threads): tokens/s (wall) and CPU seconds per token, the bytes
// of weights read per token, the limit bandwidth / bytes (streaming read of a 1 GiB buffer
// with the same thread count, measured in this run) and the resident set after building
// (VmRSS) and at peak (getrusage). Output: a markdown table on stdout.
//
// Usage: mbok_decode_bench [--model llama7b|llama1b|all] [--kernels 1,2,3] [--threads 1,2]
//                          [--tokens N] [--float] [--no-dense]
#include <mbok/bit_matrix.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/parallel.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "baselines.hpp"

namespace {

struct LayerShape {
  std::size_t m, n;  // out x in
};

struct Model {
  std::string name;
  std::size_t blocks, d, ffn;
  std::vector<LayerShape> block_layers() const {
    return {{d, d}, {d, d}, {d, d}, {d, d}, {ffn, d}, {ffn, d}, {d, ffn}};
  }
};

std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Random bits written straight into the rows; bits past `cols` stay zero (the contract).
mbok::BitMatrix random_bits(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  mbok::BitMatrix b(rows, cols);
  mbok::MutableBitMatrixView v = b.mutable_view();
  const std::size_t full = cols / 64, rest = cols % 64;
  for (std::size_t i = 0; i < rows; ++i) {
    std::uint64_t* r = v.row(i);
    for (std::size_t w = 0; w < full; ++w) r[w] = splitmix64(seed);
    if (rest) r[full] = splitmix64(seed) & ((std::uint64_t{1} << rest) - 1);
  }
  return b;
}

Eigen::VectorXf random_scales(std::size_t n, std::uint64_t seed) {
  Eigen::VectorXf v(static_cast<Eigen::Index>(n));
  for (Eigen::Index i = 0; i < v.size(); ++i)
    v(i) = 0.5f + static_cast<float>(splitmix64(seed) >> 40) * (1.0f / 16777216.0f);
  return v;
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
}
double current_rss_gib() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0 * 1024.0);
}

// Streaming read of a buffer far larger than the last-level cache, split over `threads`
// OpenMP threads; GB/s (10^9 bytes), best of `reps`.
struct Buffer {
  explicit Buffer(std::size_t bytes)
      : size(bytes), p(static_cast<std::uint8_t*>(::operator new(bytes, std::align_val_t(64)))) {
    for (std::size_t i = 0; i < bytes; i += 4096) p[i] = static_cast<std::uint8_t>(i >> 12);
    std::memset(p, 1, bytes);
  }
  ~Buffer() { ::operator delete(p, std::align_val_t(64)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::size_t size;
  std::uint8_t* p;
};

volatile std::int64_t g_sink = 0;

double read_bandwidth_gbs(const Buffer& buf, int threads, int reps) {
  mbok::bench::set_threads(threads);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = wall_seconds();
    std::int64_t sink = 0;
    const std::size_t chunk = buf.size / 64;
    // 64 chunks of 16 MiB split over the threads (parallel_for: the library's threading).
    std::vector<std::int64_t> part(64, 0);
    mbok::parallel_for(0, 64, 1, [&](std::size_t c0, std::size_t c1) {
      for (std::size_t c = c0; c < c1; ++c)
        part[c] = mbok::bench::read_stream(buf.p + c * chunk, chunk);
    });
    for (std::int64_t v : part) sink += v;
    g_sink = g_sink + sink;
    best = std::max(best, static_cast<double>(buf.size) / (wall_seconds() - t0) / 1e9);
  }
  mbok::bench::set_threads(1);
  return best;
}

struct Result {
  std::string model, impl;
  std::size_t kernels = 0;
  int threads = 1;
  double tokens_per_s = 0, cpu_ms_per_token = 0, gb_per_token = 0, limit_tokens_per_s = 0,
         rss_gib = 0, peak_rss_gib = 0;
};

// Times `step` (one token through every layer): one warm-up token, then `tokens` tokens.
template <typename Step>
void time_tokens(Result& r, int tokens, Step&& step) {
  step();
  const double w0 = wall_seconds(), c0 = cpu_seconds();
  for (int i = 0; i < tokens; ++i) step();
  const double w = wall_seconds() - w0, c = cpu_seconds() - c0;
  r.tokens_per_s = tokens / w;
  r.cpu_ms_per_token = 1e3 * c / tokens;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_arg = "all";
  std::vector<int> kernels_list{1, 2, 3}, threads_list{1, 2};
  int tokens = 8;
  bool with_float = false, with_dense = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mbok_decode_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model")
      model_arg = next();
    else if (a == "--kernels")
      kernels_list = parse_list(next());
    else if (a == "--threads")
      threads_list = parse_list(next());
    else if (a == "--tokens")
      tokens = std::max(1, std::atoi(next().c_str()));
    else if (a == "--float")
      with_float = true;
    else if (a == "--no-dense")
      with_dense = false;
    else {
      std::fprintf(stderr,
                   "usage: mbok_decode_bench [--model llama7b|llama1b|all] [--kernels 1,2,3] "
                   "[--threads 1,2] [--tokens N] [--float] [--no-dense]\n");
      return 2;
    }
  }
  std::vector<Model> models;
  if (model_arg == "llama1b" || model_arg == "all") models.push_back({"llama1b", 16, 2048, 5632});
  if (model_arg == "llama7b" || model_arg == "all") models.push_back({"llama7b", 32, 4096, 11008});

  std::fprintf(stderr, "measuring read bandwidth (1 GiB buffer)...\n");
  std::vector<double> bandwidth(threads_list.size());
  {
    const Buffer buf(std::size_t{1} << 30);
    for (std::size_t i = 0; i < threads_list.size(); ++i)
      bandwidth[i] = read_bandwidth_gbs(buf, threads_list[i], 3);
  }

  std::vector<Result> results;
  for (const Model& model : models) {
    const auto shapes = model.block_layers();
    const std::size_t max_dim = std::max(model.d, model.ffn);
    std::vector<float> xd(model.d), xf(model.ffn), y(max_dim);
    {
      std::uint64_t s = 42;
      for (float& v : xd)
        v = static_cast<float>(static_cast<std::int64_t>(splitmix64(s) >> 40) - (1 << 23)) /
            8388608.0f;
      for (float& v : xf)
        v = static_cast<float>(static_cast<std::int64_t>(splitmix64(s) >> 40) - (1 << 23)) /
            8388608.0f;
    }
    const float* x_for[2] = {xd.data(), xf.data()};

    for (int k_count : kernels_list) {
      std::fprintf(stderr, "%s K=%d: building %zu layers...\n", model.name.c_str(), k_count,
                   model.blocks * shapes.size());
      std::vector<mbok::BooleanLinear<float>> layers;
      layers.reserve(model.blocks * shapes.size());
      double bytes = 0;
      std::uint64_t seed = 1;
      for (std::size_t b = 0; b < model.blocks; ++b)
        for (const LayerShape& s : shapes) {
          mbok::MultiKernelWeights<float> w(s.m, s.n);
          for (int k = 0; k < k_count; ++k, seed += 3)
            w.add_kernel(random_bits(s.m, s.n, seed), random_scales(s.m, seed + 1),
                         random_scales(s.n, seed + 2));
          layers.emplace_back(std::move(w));
          layers.back().prepare_int8();
          bytes += k_count * (static_cast<double>(s.m * mbok::padded_row_words(s.n) * 8) +
                              4.0 * static_cast<double>(s.m + s.n));
        }
      const double rss = current_rss_gib();
      auto run_token = [&](bool int8) {
        for (auto& layer : layers) {
          const float* x = layer.in_features() == model.d ? x_for[0] : x_for[1];
          if (int8)
            layer.forward_int8(x, layer.in_features(), 1, y.data(), layer.out_features());
          else
            layer.forward(x, layer.in_features(), 1, y.data(), layer.out_features());
        }
      };
      for (int act = 0; act < (with_float ? 2 : 1); ++act)
        for (std::size_t ti = 0; ti < threads_list.size(); ++ti) {
          Result r;
          r.model = model.name;
          r.impl = act == 0 ? "mbok int8" : "mbok float";
          r.kernels = static_cast<std::size_t>(k_count);
          r.threads = threads_list[ti];
          mbok::bench::set_threads(r.threads);
          time_tokens(r, tokens, [&] { run_token(act == 0); });
          mbok::bench::set_threads(1);
          r.gb_per_token = bytes / 1e9;
          r.limit_tokens_per_s = bandwidth[ti] / r.gb_per_token;
          r.rss_gib = rss;
          r.peak_rss_gib = peak_rss_gib();
          results.push_back(r);
          std::fprintf(stderr, "  %s threads=%d: %.2f tokens/s\n", r.impl.c_str(), r.threads,
                       r.tokens_per_s);
        }
    }

    if (with_dense && model.name == "llama1b") {
      std::fprintf(stderr, "%s dense f32: building...\n", model.name.c_str());
      std::vector<std::vector<float>> dense;
      double bytes = 0;
      for (std::size_t b = 0; b < model.blocks; ++b)
        for (const LayerShape& s : shapes) {
          dense.emplace_back(s.m * s.n);
          std::uint64_t seed = b * 7 + dense.size();
          for (float& v : dense.back())
            v = static_cast<float>(static_cast<std::int64_t>(splitmix64(seed) >> 40) - (1 << 23)) /
                8388608.0f;
          bytes += 4.0 * static_cast<double>(s.m * s.n);
        }
      const double rss = current_rss_gib();
      for (std::size_t ti = 0; ti < threads_list.size(); ++ti) {
        Result r;
        r.model = model.name;
        r.impl = "dense f32 (Eigen)";
        r.threads = threads_list[ti];
        mbok::bench::set_threads(r.threads);
        time_tokens(r, tokens, [&] {
          std::size_t i = 0;
          for (std::size_t b = 0; b < model.blocks; ++b)
            for (const LayerShape& s : shapes) {
              const float* x = s.n == model.d ? x_for[0] : x_for[1];
              mbok::bench::eigen_gemm(x, dense[i++].data(), y.data(), 1, s.m, s.n);
            }
        });
        mbok::bench::set_threads(1);
        r.gb_per_token = bytes / 1e9;
        r.limit_tokens_per_s = bandwidth[ti] / r.gb_per_token;
        r.rss_gib = rss;
        r.peak_rss_gib = peak_rss_gib();
        results.push_back(r);
        std::fprintf(stderr, "  dense threads=%d: %.2f tokens/s\n", r.threads, r.tokens_per_s);
      }
    }
  }

  std::printf("read bandwidth (1 GiB buffer):");
  for (std::size_t i = 0; i < threads_list.size(); ++i)
    std::printf(" %d thread%s %.1f GB/s%s", threads_list[i], threads_list[i] > 1 ? "s" : "",
                bandwidth[i], i + 1 < threads_list.size() ? "," : "\n");
  std::printf(
      "\n| model | weights | K | threads | tokens/s | CPU ms/token | GB/token | "
      "bandwidth limit tokens/s | of limit | RSS GiB | peak RSS GiB |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Result& r : results)
    std::printf("| %s | %s | %s | %d | %.2f | %.1f | %.3f | %.2f | %.0f%% | %.2f | %.2f |\n",
                r.model.c_str(), r.impl.c_str(),
                r.kernels ? std::to_string(r.kernels).c_str() : "-", r.threads, r.tokens_per_s,
                r.cpu_ms_per_token, r.gb_per_token, r.limit_tokens_per_s,
                100.0 * r.tokens_per_s / r.limit_tokens_per_s, r.rss_gib, r.peak_rss_gib);
  return 0;
}
