#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "console.hpp"

namespace tiny {

using nlohmann::json;

namespace {

double get(const json& j, const std::string& key, double fallback = NAN) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}
std::string yes_no(bool ok) { return ok ? "**met**" : "**not met**"; }

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;
};

std::vector<Series> curves(const json& s) {
  std::vector<Series> out;
  if (!s.contains("runs")) return out;
  for (auto it = s["runs"].begin(); it != s["runs"].end(); ++it) {
    Series series;
    series.label = (it.value()["method"] == "mbok" ? "Boolean " : "latent ") +
                   it.value()["label"].get<std::string>();
    for (const auto& p : it.value()["curve"])
      series.points.push_back({p[0].get<double>(), p[2].get<double>()});
    out.push_back(std::move(series));
  }
  return out;
}

void write_svg(const std::vector<Series>& series, double teacher_loss, const std::string& path) {
  double x1 = 1, y0 = 1e9, y1 = -1e9;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  if (std::isfinite(teacher_loss)) y0 = std::min(y0, teacher_loss);
  if (y1 <= y0) y1 = y0 + 1;
  const double W = 800, H = 500, L = 70, R = 220, T = 30, B = 50;
  auto px = [&](double x) { return L + (W - L - R) * x / x1; };
  auto py = [&](double y) { return T + (H - T - B) * (y1 - y) / (y1 - y0); };
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};
  std::ofstream out(path);
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
      << "' font-family='sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n"
      << "<text x='" << W / 2 - 150
      << "' y='18'>Validation loss (nats/token) during finetuning</text>\n"
      << "<line x1='" << L << "' y1='" << H - B << "' x2='" << W - R << "' y2='" << H - B
      << "' stroke='black'/>\n"
      << "<line x1='" << L << "' y1='" << T << "' x2='" << L << "' y2='" << H - B
      << "' stroke='black'/>\n";
  for (int i = 0; i <= 5; ++i) {
    const double y = y0 + (y1 - y0) * i / 5, x = x1 * i / 5;
    out << "<text x='5' y='" << py(y) + 4 << "'>" << fixed(y, 2) << "</text>\n"
        << "<text x='" << px(x) - 10 << "' y='" << H - B + 18 << "'>" << int(x) << "</text>\n";
  }
  out << "<text x='" << (W - R) / 2 << "' y='" << H - 10 << "'>step</text>\n";
  if (std::isfinite(teacher_loss))
    out << "<line x1='" << L << "' y1='" << py(teacher_loss) << "' x2='" << W - R << "' y2='"
        << py(teacher_loss) << "' stroke='black' stroke-dasharray='4,4'/>\n<text x='" << W - R + 10
        << "' y='" << py(teacher_loss) + 4 << "'>teacher</text>\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const char* c = colors[i % 9];
    out << "<polyline fill='none' stroke='" << c << "' stroke-width='2' points='";
    for (const auto& [x, y] : series[i].points) out << px(x) << "," << py(y) << " ";
    out << "'/>\n<text x='" << W - R + 10 << "' y='" << T + 16 * (i + 1) << "' fill='" << c << "'>"
        << series[i].label << "</text>\n";
  }
  out << "</svg>\n";
}

/// Plots with gnuplot (PNG) when it runs, else writes SVG; returns the file written.
std::string plot(const json& s, const std::string& out_dir) {
  const auto series = curves(s);
  const double teacher = s.contains("evaluation") && s["evaluation"].contains("teacher")
                             ? get(s["evaluation"]["teacher"], "valid_loss")
                             : NAN;
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0 && !series.empty()) {
    const std::string data = out_dir + "/curves.dat", script = out_dir + "/curves.gp",
                      png = out_dir + "/curves.png";
    std::ofstream d(data);
    for (const auto& se : series) {
      d << "# " << se.label << "\n";
      for (const auto& [x, y] : se.points) d << x << " " << y << "\n";
      d << "\n\n";
    }
    d.close();
    std::ofstream g(script);
    g << "set terminal pngcairo size 900,560\nset output '" << png << "'\n"
      << "set title 'Validation loss (nats/token) during finetuning'\nset xlabel 'step'\nset "
         "ylabel "
         "'loss'\n"
      << "set key outside right\nset grid\n";
    g << "plot ";
    for (std::size_t i = 0; i < series.size(); ++i)
      g << (i ? ", " : "") << "'" << data << "' index " << i << " with linespoints title '"
        << series[i].label << "'";
    if (std::isfinite(teacher))
      g << ", " << teacher << " with lines dt 2 lc 'black' title 'teacher'";
    g << "\n";
    g.close();
    if (std::system(("gnuplot '" + script + "' 2>/dev/null").c_str()) == 0) return png;
  }
  const std::string svg = out_dir + "/curves.svg";
  write_svg(series, teacher, svg);
  return svg;
}

struct SpeedPoint {
  std::string label;
  double bits, tokens_per_second;
};
using SpeedPoints = std::vector<SpeedPoint>;

/// Tokens/s against bits per weight (log x axis), one labelled point per model and kernel,
/// with gnuplot (PNG); returns the file written, or "" without gnuplot.
std::string speed_plot(const SpeedPoints& points, const std::string& out_dir) {
  if (points.empty() || std::system("command -v gnuplot >/dev/null 2>&1") != 0) return "";
  const std::string data = out_dir + "/speed.dat", script = out_dir + "/speed.gp",
                    png = out_dir + "/speed.png";
  std::ofstream d(data);
  for (const auto& p : points)
    if (std::isfinite(p.bits) && std::isfinite(p.tokens_per_second))
      d << p.bits << " " << p.tokens_per_second << " \"" << p.label << "\"\n";
  d.close();
  std::ofstream g(script);
  g << "set terminal pngcairo size 900,560\nset output '" << png << "'\n"
    << "set title 'Generation speed (one thread) against storage'\nset xlabel 'bits per weight'\n"
    << "set ylabel 'tokens/s'\nset logscale x 2\nset xrange [0.7:128]\nset yrange [0:*]\nset "
       "grid\nunset key\n"
    << "plot '" << data
    << "' using 1:2 with points pt 7 ps 1.5, '' using 1:2:3 with labels offset 1,0.6 left font "
       "',9'\n";
  g.close();
  if (std::system(("gnuplot '" + script + "' 2>/dev/null").c_str()) == 0) return png;
  return "";
}

}  // namespace

std::string write_report(const nlohmann::json& s, const std::string& out_dir) {
  std::ostringstream md;
  const json ev = s.value("evaluation", json::object());
  const json runs = s.value("runs", json::object());
  const json ptq = s.value("ptq", json::object());
  const double teacher_ppl = get(ev.value("teacher", json::object()), "perplexity");

  md << "## Quality (validation split, " << s["corpus"].value("valid_bytes", 0)
     << " held-out bytes, " << s["corpus"].value("valid_tokens", 0)
     << " tokens; mbok-run perplexity's windowed contract, float activations)\n\n"
     << "| model | bits/weight | val. loss (nats/token) | perplexity | bits/char | ppl / teacher "
        "|\n"
     << "|---|---:|---:|---:|---:|---:|\n";
  auto row = [&](const std::string& label, const std::string& key) {
    if (!ev.contains(key)) return;
    const json& r = ev[key];
    md << "| " << label << " | " << fixed(get(r, "bits_per_weight"), 2) << " | "
       << fixed(get(r, "valid_loss")) << " | " << fixed(get(r, "perplexity")) << " | "
       << fixed(get(r, "bits_per_char")) << " | " << fixed(get(r, "perplexity") / teacher_ppl)
       << " |\n";
  };
  row("teacher (float)", "teacher");
  std::vector<std::string> variant_names;
  for (auto it = ptq.begin(); it != ptq.end(); ++it) variant_names.push_back(it.key());
  std::sort(variant_names.begin(), variant_names.end());
  for (const auto& v : variant_names) {
    const std::string label = ptq[v].value("label", v);
    row(label + " post-training (SVID)", "ptq-" + v);
    row(label + " Boolean finetuned", "mbok-" + v);
    row(label + " latent-weight baseline", "latent-" + v);
  }

  md << "\n## Finetuning cost\n\n| run | steps | ms/step | training state bytes per Boolean weight "
        "| mean flip fraction/step |\n"
     << "|---|---:|---:|---:|---:|\n";
  for (auto it = runs.begin(); it != runs.end(); ++it) {
    const json& r = it.value();
    md << "| " << (r["method"] == "mbok" ? "Boolean " : "latent ") << r.value("label", it.key())
       << " | " << r.value("steps", 0) << " | " << fixed(get(r, "ms_per_step"), 1) << " | "
       << fixed(get(r, "state_bytes_per_boolean_weight"), 3) << " | "
       << fixed(get(r, "mean_flip_fraction"), 5) << " |\n";
  }

  md << "\n## Generation speed (one thread, tokens/s, KV cache, as mbok-run generate; the best of "
        "interleaved rounds)\n\n"
     << "| model | kernels | bits/weight | tokens/s | x teacher |\n"
        "|---|---|---:|---:|---:|\n";
  const double teacher_speed =
      ev.contains("teacher")
          ? get(ev["teacher"].value("tokens_per_second", json::object()), "eigen_float")
          : NAN;
  SpeedPoints points;
  if (std::isfinite(teacher_speed)) {
    md << "| teacher | Eigen float | 32 | " << fixed(teacher_speed, 0) << " | 1.00 |\n";
    points.push_back({"teacher (Eigen float)", 32, teacher_speed});
  }
  for (const auto& v : variant_names) {
    const std::string key = "mbok-" + v;
    if (!ev.contains(key)) continue;
    const json t = ev[key].value("tokens_per_second", json::object());
    const std::string isa = ev[key].value("isa", "");
    const std::string label = ptq[v].value("label", v);
    const double bits = get(ev[key], "bits_per_weight");
    md << "| " << label << " | Boolean, float activations (" << isa << ") | " << fixed(bits, 2)
       << " | " << fixed(get(t, "boolean_float"), 0) << " | "
       << fixed(get(t, "boolean_float") / teacher_speed, 2) << " |\n"
       << "| " << label << " | Boolean, int8 activations (" << isa << ") | " << fixed(bits, 2)
       << " | " << fixed(get(t, "boolean_int8"), 0) << " | "
       << fixed(get(t, "boolean_int8") / teacher_speed, 2) << " |\n";
    points.push_back({label + " int8", bits, get(t, "boolean_int8")});
    points.push_back({label + " float", bits, get(t, "boolean_float")});
  }
  const std::string speed_file = speed_plot(points, out_dir);
  if (!speed_file.empty()) md << "\nTokens/s against bits per weight: `" << speed_file << "`\n";

  // The paper's claims, checked on these numbers.
  md << "\n## Claims checked\n\n";
  auto ppl = [&](const std::string& key) {
    return ev.contains(key) ? get(ev[key], "perplexity") : NAN;
  };
  bool all_beat = !variant_names.empty();
  std::ostringstream detail;
  for (const auto& v : variant_names) {
    const double a = ppl("ptq-" + v), b = ppl("mbok-" + v);
    all_beat = all_beat && b < a;
    detail << " " << ptq[v].value("label", v) << ": " << fixed(a, 2) << " -> " << fixed(b, 2)
           << ";";
  }
  md << "- Boolean finetuning beats post-training binarization at every K: " << yes_no(all_beat)
     << " (ppl" << detail.str() << ")\n";
  for (const auto& [k, target] :
       std::vector<std::pair<std::string, double>>{{"k2", 1.2}, {"k3", 1.1}}) {
    const double r = ppl("mbok-" + k) / teacher_ppl;
    if (std::isfinite(r))
      md << "- K=" << k.substr(1) << " finetuned within " << target
         << "x of the teacher's perplexity: " << yes_no(r <= target) << " (" << fixed(r) << "x)\n";
  }
  std::vector<double> by_k;
  for (int k = 1; k <= 4; ++k)
    if (std::isfinite(ppl("mbok-k" + std::to_string(k))))
      by_k.push_back(ppl("mbok-k" + std::to_string(k)));
  if (by_k.size() > 1)
    md << "- Quality improves monotonically with K: "
       << yes_no(std::is_sorted(by_k.rbegin(), by_k.rend())) << "\n";
  for (auto it = runs.begin(); it != runs.end(); ++it) {
    if (it.value()["method"] != "latent") continue;
    const std::string v = it.value()["variant"];
    const double b = ppl("mbok-" + v), l = ppl("latent-" + v);
    const double sb =
        runs.contains("mbok-" + v) ? get(runs["mbok-" + v], "state_bytes_per_boolean_weight") : NAN;
    const double sl = get(it.value(), "state_bytes_per_boolean_weight");
    md << "- " << it.value().value("label", v)
       << ": Boolean finetuning within 0.5 % of the latent baseline's perplexity or better (one "
          "seed; `sweep` compares over seeds): "
       << yes_no(b <= l * 1.005) << " (ppl " << fixed(b, 2) << " vs " << fixed(l, 2)
       << "); training state per Boolean weight " << fixed(sb, 3) << " vs " << fixed(sl, 3)
       << " bytes (" << fixed(sl / sb, 1) << "x less)\n";
  }
  for (const auto& v : variant_names) {
    const std::string key = "mbok-" + v;
    if (!ev.contains(key) || !std::isfinite(teacher_speed)) continue;
    const double q =
        get(ev[key].value("tokens_per_second", json::object()), "boolean_int8") / teacher_speed;
    md << "- " << ptq[v].value("label", v)
       << " generates at least 3x more tokens/s than the teacher (int8): " << yes_no(q >= 3) << " ("
       << fixed(q, 2) << "x)\n";
  }

  const std::string plot_file = plot(s, out_dir);
  md << "\nValidation-loss curves: `" << plot_file << "`\n";

  md << "\n## Samples (prompt \"" << s["settings"].value("prompt", "")
     << "\", temperature 0.8)\n\n";
  for (auto it = ev.begin(); it != ev.end(); ++it) {
    std::string text = it.value().value("sample", "");
    for (char& c : text)
      if (c == '`' || static_cast<unsigned char>(c) < 32) c = c == '\n' ? '\n' : ' ';
    md << "**" << it.key() << "**\n\n```\n" << text << "\n```\n\n";
  }
  std::ofstream(out_dir + "/report.md") << md.str();
  return md.str();
}

}  // namespace tiny
