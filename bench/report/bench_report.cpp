// mbok_bench_report: turns mbok_bench's JSON output (--benchmark_out) into a markdown table
// of times and ratios. Every case named <family>/<impl>/<shape>/t:<t>/threads:<n> (see
// bench/baselines.hpp) is compared with the dense baselines of the same shape, tokens and
// threads measured in the same run ("dense_f32/eigen", "dense_f32/openblas"): a ratio above 1
// means the case is that many times faster. A case is also compared with the scalar path of
// the same family and shape, a case with threads > 1 with its own one-thread run, and the
// XNOR and int8 products with the L1 ceiling of their ISA measured in the same run (the
// product's own register tile on L1-resident operands: ceiling_xnor, ceiling_i8_gemv for t = 1,
// ceiling_i8_gemm for t > 1; one core's rate times the threads; a K-kernel case does K products
// per item): the fraction of its inner loop's rate the kernel reaches. The ceiling is the best
// approach's of the ISA (the impl up to its first '-': "avx512-lut" and "avx512-masked" both
// compare with the faster of ceiling_i8_gemv and ceiling_i8_lut_gemv of avx512), so every algorithm
// reads against the same peak. GEMV rows (t = 1) also show "of bandwidth": their bytes per second
// over bandwidth_read (one core streaming far more than the last-level cache) times the threads.
//
// Usage: mbok_bench_report results.json [table.md]   (the table goes to stdout and the file)
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Row {
  std::string family, impl, key, label;  // key: "<shape>/t:<t>/threads:<n>"
  std::string shape_tokens;              // "<shape>/t:<t>"
  int threads = 1;
  double seconds = 0, items_per_second = 0, bytes_per_second = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  for (std::string p; std::getline(in, p, sep);) parts.push_back(p);
  return parts;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

double to_seconds(double value, const std::string& unit) {
  if (unit == "ns") return value * 1e-9;
  if (unit == "us") return value * 1e-6;
  if (unit == "ms") return value * 1e-3;
  return value;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// The rows of the report: medians when the run has repetitions, else the single runs.
std::vector<Row> read_rows(const nlohmann::json& doc) {
  bool has_median = false;
  for (const auto& b : doc.at("benchmarks"))
    if (b.value("run_type", "") == "aggregate" && b.value("aggregate_name", "") == "median")
      has_median = true;
  std::vector<Row> rows;
  for (const auto& b : doc.at("benchmarks")) {
    const bool aggregate = b.value("run_type", "") == "aggregate";
    if (has_median ? !(aggregate && b.value("aggregate_name", "") == "median") : aggregate)
      continue;
    if (b.contains("error_occurred") && b["error_occurred"].get<bool>()) continue;
    std::vector<std::string> parts;
    for (const std::string& p : split(b.value("run_name", b.value("name", "")), '/'))
      if (!(starts_with(p, "real_time") || starts_with(p, "min_time:") ||
            starts_with(p, "iterations:") || starts_with(p, "repeats:") ||
            starts_with(p, "manual_time")))
        parts.push_back(p);
    if (parts.size() < 3) continue;  // not in the <family>/<impl>/... convention
    Row r;
    r.family = parts[0];
    r.impl = parts[1];
    for (std::size_t i = 2; i < parts.size(); ++i) {
      if (starts_with(parts[i], "threads:")) {
        r.threads = std::stoi(parts[i].substr(8));
        continue;
      }
      r.shape_tokens += (r.shape_tokens.empty() ? "" : "/") + parts[i];
    }
    r.key = r.shape_tokens + "/threads:" + std::to_string(r.threads);
    r.label = b.value("label", "");
    r.seconds = to_seconds(b.value("real_time", 0.0), b.value("time_unit", "ns"));
    r.items_per_second = b.value("items_per_second", 0.0);
    r.bytes_per_second = b.value("bytes_per_second", 0.0);
    rows.push_back(r);
  }
  return rows;
}

bool is_gemv(const Row& r) {
  return r.shape_tokens.size() >= 4 &&
         r.shape_tokens.compare(r.shape_tokens.size() - 4, 4, "/t:1") == 0;
}

// Google Benchmark's "load_avg" context entry (1, 5 and 15 minutes), or "?" where absent.
std::string load_average(const nlohmann::json& ctx) {
  const auto it = ctx.find("load_avg");
  if (it == ctx.end() || !it->is_array() || it->empty()) return "?";
  std::string s;
  for (const auto& v : *it) s += (s.empty() ? "" : " / ") + fixed(v.get<double>(), 2);
  return s;
}

// The ISA of an impl name: "avx512-lut" -> "avx512".
std::string isa_of(const std::string& impl) { return impl.substr(0, impl.find('-')); }

// The ceiling cases a kernel's rate is compared with (the best of them counts).
std::vector<std::string> ceiling_names(const Row& r) {
  const std::string isa = isa_of(r.impl);
  if (r.family == "xnor_gemm") return {"ceiling_xnor/" + isa + "/l1/t:1/threads:1"};
  if (starts_with(r.family, "forward_i8_"))
    return {
        (is_gemv(r) ? "ceiling_i8_gemv/" + isa + "/l1/t:1" : "ceiling_i8_gemm/" + isa + "/l1/t:4") +
            "/threads:1",
        "ceiling_i8_lut_gemv/" + isa + "/l1/t:1/threads:1"};
  return {};
}

// Kernels per case: a "<family>_k<K>" case does K kernel products per counted item.
double kernels_of(const Row& r) {
  const std::size_t at = r.family.rfind("_k");
  if (at == std::string::npos || at + 2 >= r.family.size()) return 1;
  const std::string digits = r.family.substr(at + 2);
  return digits.find_first_not_of("0123456789") == std::string::npos ? std::stod(digits) : 1;
}

std::string ratio(double base_seconds, double seconds) {
  if (base_seconds <= 0 || seconds <= 0) return "-";
  return fixed(base_seconds / seconds, 2) + "x";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: mbok_bench_report results.json [table.md]\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "mbok_bench_report: cannot open " << argv[1] << "\n";
    return 1;
  }
  nlohmann::json doc;
  try {
    in >> doc;
  } catch (const std::exception& e) {
    std::cerr << "mbok_bench_report: " << argv[1] << " is not benchmark JSON: " << e.what() << "\n";
    return 1;
  }
  const std::vector<Row> rows = read_rows(doc);
  std::map<std::string, const Row*> by_name;  // family/impl/key
  for (const Row& r : rows) by_name[r.family + "/" + r.impl + "/" + r.key] = &r;
  auto find = [&](const std::string& name) -> const Row* {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  };

  std::ostringstream out;
  const auto& ctx = doc.value("context", nlohmann::json::object());
  out << "# mbok benchmark results\n\n";
  out << "Host: " << ctx.value("host_name", "?") << ", " << ctx.value("num_cpus", 0) << " CPUs at "
      << ctx.value("mhz_per_cpu", 0) << " MHz; mbok ISAs: " << ctx.value("mbok_isas", "?")
      << "; OpenBLAS: " << ctx.value("mbok_openblas", "?")
      << "; OpenMP waits: " << ctx.value("mbok_omp_waits", "?") << "; load average "
      << load_average(ctx) << "; date " << ctx.value("date", "?") << ".\n\n";
  out << "Ratios are times of the dense float baseline of the same shape, tokens and threads "
         "divided by the case's time (above 1: faster than the baseline), measured in the same "
         "run. "
         "Items are multiply-adds of the m x n layer per token (t m n).\n\n";
  out << "| case | shape/tokens | threads | ISA | time (us) | G items/s | GB/s | vs Eigen | vs "
         "OpenBLAS | vs scalar | vs 1 thread | of ceiling | of bandwidth |\n";
  out << "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  // The fastest one-thread DRAM bandwidth_read case of the run (not the cache-resident one).
  const Row* bandwidth = nullptr;
  for (const Row& r : rows)
    if (r.family == "bandwidth_read" && r.threads == 1 && r.shape_tokens.rfind("256MiB", 0) == 0 &&
        (!bandwidth || r.bytes_per_second > bandwidth->bytes_per_second))
      bandwidth = &r;
  for (const Row& r : rows) {
    const bool baseline = r.family == "dense_f32";
    const Row* eigen = find("dense_f32/eigen/" + r.key);
    const Row* blas = find("dense_f32/openblas/" + r.key);
    const Row* one = r.threads > 1
                         ? find(r.family + "/" + r.impl + "/" + r.shape_tokens + "/threads:1")
                         : nullptr;
    const Row* scalar = r.impl != "scalar" ? find(r.family + "/scalar/" + r.key) : nullptr;
    const Row* ceiling = nullptr;
    for (const std::string& name : ceiling_names(r)) {
      const Row* c = find(name);
      if (c && (!ceiling || c->items_per_second > ceiling->items_per_second)) ceiling = c;
    }
    std::string of_ceiling = "-";
    if (ceiling && ceiling->items_per_second > 0)
      of_ceiling = fixed(100.0 * r.items_per_second * kernels_of(r) /
                             (ceiling->items_per_second * r.threads),
                         0) +
                   "%";
    std::string of_bandwidth = "-";
    if (bandwidth && bandwidth->bytes_per_second > 0 && is_gemv(r) && r.bytes_per_second > 0 &&
        !baseline)
      of_bandwidth =
          fixed(100.0 * r.bytes_per_second / (bandwidth->bytes_per_second * r.threads), 0) + "%";
    out << "| " << r.family << "/" << r.impl << " | " << r.shape_tokens << " | " << r.threads
        << " | " << (r.label.empty() ? (baseline ? "native" : "-") : r.label) << " | "
        << fixed(r.seconds * 1e6, 1) << " | " << fixed(r.items_per_second * 1e-9, 2) << " | "
        << fixed(r.bytes_per_second * 1e-9, 2) << " | "
        << (eigen && eigen != &r ? ratio(eigen->seconds, r.seconds) : "-") << " | "
        << (blas && blas != &r ? ratio(blas->seconds, r.seconds) : "-") << " | "
        << (scalar ? ratio(scalar->seconds, r.seconds) : "-") << " | "
        << (one ? ratio(one->seconds, r.seconds) : "-") << " | " << of_ceiling << " | "
        << of_bandwidth << " |\n";
  }
  std::cout << out.str();
  if (argc == 3) {
    std::ofstream file(argv[2]);
    file << out.str();
    if (!file) {
      std::cerr << "mbok_bench_report: cannot write " << argv[2] << "\n";
      return 1;
    }
  }
  return 0;
}
