#pragma once
// What the stages show on the console while they run: elapsed time, numbers with fixed
// digits and progress bars on standard error.

#include <common/progress_bar.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace tiny {

using Clock = std::chrono::steady_clock;

/// Seconds from `t0` to now.
double seconds_since(Clock::time_point t0);

/// `v` with `digits` digits after the point.
std::string fixed(double v, int digits = 3);

/// A fresh progress bar on standard error (redrawn in place on a terminal).
mbok_examples::ProgressBar progress_bar(const std::string& label, std::size_t total);

}  // namespace tiny
