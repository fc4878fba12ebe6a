// mbok-convert: a full-precision safetensors model or Hugging Face checkpoint directory in, an
// mbok file out (see --help).
// Exit codes: 0 done, 2 bad options or a bad file (one line on stderr), 1 anything else.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <common/tool_errors.hpp>

#include "conversion.hpp"

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  std::ostringstream s;
  s << std::fixed << std::setprecision(u == 0 ? 0 : 2) << b << " " << units[u];
  return s.str();
}

void print_table(std::ostream& out, const mbok::tools::ConvertResult& r) {
  std::size_t width = 5;
  for (const auto& l : r.layers) width = std::max(width, l.layer.size());
  out << std::left << std::setw(static_cast<int>(width)) << "layer" << std::right << std::setw(14)
      << "shape" << std::setw(4) << "K" << std::setw(12) << "rel.error" << std::setw(11) << "bits/w"
      << "\n";
  out << std::string(width + 41, '-') << "\n";
  for (const auto& l : r.layers) {
    std::ostringstream shape;
    shape << l.rows << "x" << l.cols;
    out << std::left << std::setw(static_cast<int>(width)) << l.layer << std::right << std::setw(14)
        << shape.str() << std::setw(4) << l.kernels << std::setw(12) << std::fixed
        << std::setprecision(4) << l.relative_error << std::setw(11) << std::setprecision(3)
        << l.bits_per_weight << "\n";
  }
  out << std::string(width + 41, '-') << "\n";
  out << std::fixed << std::setprecision(3) << r.layers.size() << " layers converted ("
      << static_cast<std::size_t>(r.converted_weights) << " weights): " << r.average_kernel_bits
      << " kernel bits/weight, " << r.average_bits << " bits/weight with scales\n";
  out << r.kept_tensors << " tensors kept as they were; file "
      << human_bytes(static_cast<double>(r.file_bytes)) << " (input "
      << human_bytes(static_cast<double>(r.input_bytes)) << ")\n";
}

int fail(const std::string& message) {
  return mbok_examples::report_error("mbok-convert", message);
}

}  // namespace

int main(int argc, char** argv) {
  mbok::tools::ConvertOptions o;
  CLI::App app{
      "Converts a full-precision safetensors model, or a Hugging Face LLaMA-family checkpoint "
      "directory\n"
      "(config.json, model.safetensors or its index and shards, tokenizer.json), into an mbok "
      "file:\n"
      "every selected matrix W becomes K Boolean kernels with scales, W ~ sum_k B_k (.) s_out_k "
      "s_in_k^T\n"
      "(successive SVID), one matrix at a time; other tensors are kept as they are. From a "
      "directory the\n"
      "file also carries config.json and tokenizer.json (metadata keys of those names).",
      "mbok-convert"};
  double bits = 0;
  app.add_option("input", o.input,
                 "full-precision model: a .safetensors file or a Hugging Face checkpoint directory")
      ->required();
  app.add_option("output", o.output, "mbok file to write (replaced atomically)")->required();
  auto* kernels = app.add_option("-k,--kernels", o.kernels, "kernels per matrix (default 2)");
  auto* bits_opt =
      app.add_option("-b,--bits", bits,
                     "average kernel bits per converted weight: K per matrix chosen to minimise "
                     "sum h e(K) f(p) (method.md section 5)");
  bits_opt->excludes(kernels);
  app.add_option("--max-kernels", o.max_kernels, "largest K per matrix with --bits (default 4)")
      ->needs(bits_opt);
  app.add_option("--include", o.include,
                 "regex: convert only 2-D tensors whose name matches (default: all for a file; the "
                 "decoder blocks'\n"
                 "linear layers, model.layers.N.(self_attn|mlp).*_proj.weight, for a directory)");
  app.add_option("--exclude", o.exclude,
                 "regex: never convert these (default: embeddings and the output head)");
  app.add_option("--importance", o.importance_file,
                 "JSON {tensor or layer name: weight h}, 1 by default");
  app.add_option("--report", o.report_file, "write the table as JSON to this file");
  app.add_option("--packed", o.packed,
                 "write the layers packed for the table-lookup products, in this layout: native "
                 "(this CPU's),\ninterleave4 (AVX-512, NEON) or lanes16 (AVX2); a decoder of that "
                 "layout maps them with no repack.\nAn mbok file as input is rewritten in the "
                 "layout asked for (bits without --packed)")
      ->check(CLI::IsMember({"native", "interleave4", "lanes16"}));
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }
  if (bits_opt->count() > 0) o.bits = bits;
  o.progress = !quiet;
  return mbok_examples::run_reporting_errors("mbok-convert", [&] {
    const mbok::tools::ConvertResult r = mbok::tools::convert(o, std::cerr);
    print_table(std::cout, r);
    if (!o.report_file.empty()) {
      std::ofstream report(o.report_file);
      report << mbok::tools::report_json(o, r).dump(2) << "\n";
      if (!report) return fail("cannot write report '" + o.report_file + "'");
    }
    return 0;
  });
}
