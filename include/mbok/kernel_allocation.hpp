#pragma once
/// \file
/// Per-layer kernel budgets (method.md section 5): choose K_l for every layer l to minimise
///
///     sum_l  h_l e_l(K_l) f(p_l),     f(p) = (1/p) log(1/p)
///
/// subject to sum_l K_l p_l <= T (the average kernel bits per weight) and K_l <= K_max, where
/// e_l(K) is layer l's relative residual after K kernels, h_l an importance weight and p_l the
/// layer's share of all weights. Solved greedily: every layer starts at one kernel, then one
/// kernel at a time goes to the layer with the largest objective drop per added bit (an added
/// kernel costs p_l bits per weight of the model) while the budget allows; exchanges between
/// layers then recover what whole kernels strand (see `allocate_kernels`).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "error.hpp"

namespace mbok {

/// One layer's input to the allocation.
struct LayerErrorCurve {
  std::string name;             ///< for messages
  std::size_t num_weights = 0;  ///< m x n (> 0)
  /// errors[k - 1] = e(k), the relative residual after k kernels, for k = 1..errors.size()
  /// (non-empty, finite, >= 0; successive SVID makes it non-increasing). Its length also
  /// caps K for the layer.
  std::vector<double> errors;
  double importance = 1.0;  ///< h (finite, >= 0)
};

/// The chosen kernels and what they cost.
struct KernelAllocation {
  std::vector<std::size_t> kernels;  ///< K_l, one per layer, in input order
  double objective = 0;              ///< sum_l h_l e_l(K_l) f(p_l)
  double average_bits = 0;           ///< sum_l K_l p_l (kernel bits per weight, scales excluded)
};

/// f(p) = (1/p) log(1/p), the weight of a layer holding a share p in (0, 1] of all weights.
inline double layer_share_weight(double p) { return std::log(1.0 / p) / p; }

namespace detail {
inline void check_curves(const std::vector<LayerErrorCurve>& layers) {
  require(!layers.empty(), "kernel allocation: no layers");
  for (const LayerErrorCurve& l : layers) {
    require(l.num_weights > 0, "kernel allocation: layer '", l.name, "' has no weights");
    require(!l.errors.empty(), "kernel allocation: layer '", l.name, "' has an empty error curve");
    for (double e : l.errors)
      require(std::isfinite(e) && e >= 0, "kernel allocation: layer '", l.name,
              "' has error ", e, ", expected finite and >= 0");
    require(std::isfinite(l.importance) && l.importance >= 0, "kernel allocation: layer '", l.name,
            "' has importance ", l.importance, ", expected finite and >= 0");
  }
}
inline std::vector<double> shares(const std::vector<LayerErrorCurve>& layers) {
  double total = 0;
  for (const auto& l : layers) total += static_cast<double>(l.num_weights);
  std::vector<double> p;
  for (const auto& l : layers) p.push_back(static_cast<double>(l.num_weights) / total);
  return p;
}
}  // namespace detail

/// sum_l K_l p_l for `kernels` (one per layer). Throws `InvalidArgument` for bad input.
inline double allocation_bits(const std::vector<LayerErrorCurve>& layers,
                              const std::vector<std::size_t>& kernels) {
  detail::check_curves(layers);
  detail::require(kernels.size() == layers.size(), "kernel allocation: ", kernels.size(),
                  " kernel counts for ", layers.size(), " layers");
  const std::vector<double> p = detail::shares(layers);
  double bits = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) bits += static_cast<double>(kernels[l]) * p[l];
  return bits;
}

/// sum_l h_l e_l(K_l) f(p_l) for `kernels` (each in 1..errors.size()). Throws
/// `InvalidArgument` for bad input or a K outside its curve.
inline double allocation_objective(const std::vector<LayerErrorCurve>& layers,
                                   const std::vector<std::size_t>& kernels) {
  detail::check_curves(layers);
  detail::require(kernels.size() == layers.size(), "kernel allocation: ", kernels.size(),
                  " kernel counts for ", layers.size(), " layers");
  const std::vector<double> p = detail::shares(layers);
  double objective = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::size_t k = kernels[l];
    detail::require(k >= 1 && k <= layers[l].errors.size(), "kernel allocation: layer '",
                    layers[l].name, "' has K = ", k, ", its error curve covers 1..",
                    layers[l].errors.size());
    objective += layers[l].importance * layers[l].errors[k - 1] * layer_share_weight(p[l]);
  }
  return objective;
}

namespace detail {

struct AllocationState {
  const std::vector<LayerErrorCurve>& layers;
  std::vector<double> p;
  double budget;
  std::size_t max_kernels;
  static constexpr double kSlack = 1e-12;  // the sum of shares is 1 only up to rounding

  std::size_t cap(std::size_t l) const { return std::min(max_kernels, layers[l].errors.size()); }
  // Objective change when layer l goes from k to k + 1 kernels (negative = better).
  double delta_up(std::size_t l, std::size_t k) const {
    return layers[l].importance * (layers[l].errors[k] - layers[l].errors[k - 1]) * layer_share_weight(p[l]);
  }
  double bits(const std::vector<std::size_t>& k) const {
    double b = 0;
    for (std::size_t l = 0; l < k.size(); ++l) b += static_cast<double>(k[l]) * p[l];
    return b;
  }

  // One kernel at a time to the layer with the largest objective drop per added bit.
  void greedy_fill(std::vector<std::size_t>& k) const {
    double used = bits(k);
    for (;;) {
      std::size_t best = k.size();
      double best_gain = 0, best_drop = 0;
      for (std::size_t l = 0; l < k.size(); ++l) {
        if (k[l] >= cap(l) || used + p[l] > budget + kSlack) continue;
        const double drop = layers[l].importance * (layers[l].errors[k[l] - 1] - layers[l].errors[k[l]]);
        if (!(drop > 0)) continue;  // a kernel that does not help is not worth its bits
        const double gain = drop * layer_share_weight(p[l]) / p[l];
        if (best == k.size() || gain > best_gain || (gain == best_gain && drop > best_drop)) {
          best = l;
          best_gain = gain;
          best_drop = drop;
        }
      }
      if (best == k.size()) return;
      ++k[best];
      used += p[best];
    }
  }

  // Moves one kernel from one layer to another while that lowers the objective within the
  // budget (whole kernels make the budget a knapsack: greedy alone can strand bits).
  void refine(std::vector<std::size_t>& k) const {
    for (int round = 0; round < 100000; ++round) {
      const double used = bits(k);
      double best = -1e-15;
      std::size_t from = k.size(), to = k.size();
      for (std::size_t b = 0; b < k.size(); ++b) {
        if (k[b] >= cap(b)) continue;
        const double up = delta_up(b, k[b]);
        for (std::size_t a = 0; a < k.size(); ++a) {
          if (a == b || k[a] <= 1) continue;
          if (used - p[a] + p[b] > budget + kSlack) continue;
          const double change = up - delta_up(a, k[a] - 1);
          if (change < best) {
            best = change;
            from = a;
            to = b;
          }
        }
      }
      if (to == k.size()) return;
      --k[from];
      ++k[to];
      greedy_fill(k);  // bits freed by the move may fit another kernel
    }
  }
};

}  // namespace detail

/// The allocation under an average budget of `bits_budget` kernel bits per weight with at most
/// `max_kernels` per layer (and at most each curve's length); every layer gets at least one
/// kernel. The greedy of method.md section 5 runs first: one kernel at a time to the largest
/// drop per added bit (ties, for instance a single layer, whose f(1) = 0, go to the larger
/// weighted error drop, then the earlier layer). With `refine` (the default) the result is then
/// improved by exchanges (one kernel moved between two layers while the objective falls), and
/// the same is done from the uniform allocation (K = floor(T) everywhere, filled greedily);
/// the better of the two is returned, so it is never worse than uniform K at equal bits.
/// Throws `InvalidArgument` for bad curves, `max_kernels` = 0, or a budget below one kernel for
/// every layer (T < 1).
inline KernelAllocation allocate_kernels(const std::vector<LayerErrorCurve>& layers, double bits_budget,
                                         std::size_t max_kernels, bool refine = true) {
  detail::check_curves(layers);
  detail::require(max_kernels >= 1, "kernel allocation: max_kernels must be >= 1, got 0");
  detail::require(std::isfinite(bits_budget) && bits_budget >= 1.0 - 1e-12, "kernel allocation: budget ",
                  bits_budget, " bits per weight is below one kernel per layer (1 bit)");
  const detail::AllocationState state{layers, detail::shares(layers), bits_budget, max_kernels};
  std::vector<std::size_t> greedy(layers.size(), 1);
  state.greedy_fill(greedy);
  if (refine) {
    state.refine(greedy);
    const double level = std::floor(bits_budget + detail::AllocationState::kSlack);
    std::vector<std::size_t> uniform(layers.size());
    for (std::size_t l = 0; l < layers.size(); ++l)
      uniform[l] = std::max<std::size_t>(1, std::min(static_cast<std::size_t>(level), state.cap(l)));
    state.greedy_fill(uniform);
    state.refine(uniform);
    if (allocation_objective(layers, uniform) < allocation_objective(layers, greedy)) greedy = uniform;
  }
  KernelAllocation out;
  out.kernels = std::move(greedy);
  out.average_bits = allocation_bits(layers, out.kernels);
  out.objective = allocation_objective(layers, out.kernels);
  return out;
}

}  // namespace mbok
