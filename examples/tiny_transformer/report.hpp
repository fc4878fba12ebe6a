#pragma once
// The report: markdown tables from summary.json (quality, finetuning cost, generation
// speed, the paper's claims checked, samples) and a plot of the finetuning runs' validation
// loss curves (PNG with gnuplot when installed, else SVG written directly).

#include <nlohmann/json.hpp>

#include <string>

namespace tiny {

/// Writes report.md (and the plots) into `out_dir` from a summary; returns the markdown.
std::string write_report(const nlohmann::json& summary, const std::string& out_dir);

}  // namespace tiny
