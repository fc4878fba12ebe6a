#pragma once
/// \file
/// Learning-rate schedules shared by the optimizers: a linear warmup to the peak, then a
/// cosine decay to a floor. `BooleanOptimizer::set_learning_rate` and
/// `AdamW::set_learning_rate` take its value at each step, so eta follows the same schedule
/// as the float learning rates (the first Boolean steps, with beta = 0 and the largest
/// signals, then get a small eta).

#include <algorithm>
#include <cmath>

#include "error.hpp"

namespace mbok {

/// Settings of `warmup_cosine`.
struct WarmupCosine {
  double peak = 1.0;   ///< the rate after warmup
  long steps = 1;      ///< total steps (the cosine reaches the floor here)
  long warmup = 0;     ///< steps of linear warmup (rate peak * (step + 1) / warmup)
  double floor = 0.1;  ///< final rate as a fraction of the peak, in [0, 1]

  /// The rate at `step` (0-based); steps past `steps` stay at the floor. Throws
  /// `InvalidArgument` for a negative step or bad settings.
  double at(long step) const {
    detail::require(std::isfinite(peak) && peak >= 0,
                    "WarmupCosine: peak must be finite and >= 0, got ", peak);
    detail::require(steps > 0 && warmup >= 0 && warmup <= steps, "WarmupCosine: need 0 <= warmup (",
                    warmup, ") <= steps (", steps, ") and steps > 0");
    detail::require(floor >= 0 && floor <= 1, "WarmupCosine: floor must be in [0, 1], got ", floor);
    detail::require(step >= 0, "WarmupCosine: step must be >= 0, got ", step);
    if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
    const double t =
        static_cast<double>(step - warmup) / static_cast<double>(std::max(1L, steps - warmup));
    const double pi = 3.14159265358979323846;
    return peak * (floor + (1 - floor) * 0.5 * (1 + std::cos(pi * std::min(1.0, t))));
  }
};

}  // namespace mbok
