#pragma once
/// \file
/// `BooleanOptimizer`: trains packed Boolean kernels by flipping bits, with no latent
/// weights (method.md section 3). Per trainable Boolean weight w in {+1, -1} it keeps one
/// accumulator m and, from the Boolean signal q = dL/dw,
///
///     m <- beta * m + eta * q
///     if sign(m) == sign(w) and |m| >= threshold:   w <- -w ;  m <- 0
///
/// (w = +1 is bit 0; flipping w when m and w agree moves w against the gradient). beta is
/// per tensor: adaptive, 1 - (fraction of the tensor flipped at the previous step), starting
/// at 0; or fixed.
///
/// The accumulator's storage is an option (`AccumulatorType`), so its memory can be weighed
/// against its quality:
/// - `f32`: float, 4 bytes per weight;
/// - `f16`: IEEE binary16, 2 bytes, round to nearest even, saturating at +-65504. Chosen over
///   bfloat16 because m lives in a known range (it is reset at each flip and compared with
///   the threshold), so the 11-bit significand of binary16 matters and bfloat16's extra
///   range does not: with 8 bits, bfloat16 drops every increment below 1/256 of m;
/// - `i8`: fixed point, 1 byte: m = code * scale with code in [-127, 127] and a per-tensor
///   scale fixed at construction to threshold / 64 (a flip needs |code| >= 64, and m
///   saturates at about twice the threshold). The new m is rounded stochastically: code =
///   floor(m / scale + u), u uniform in [0, 1), so increments smaller than one step still
///   accumulate in expectation. u comes from a counter-based generator keyed by (seed, step,
///   tensor, element): reproducible, and independent of the number of threads.
/// The flip decision uses the unrounded m of the step.
///
/// State (export_state, under a prefix): `step` (I64), `seed` (I64, the generator's key),
/// `accumulator_type` (I64: 0 f32, 1 f16, 2 i8), and per parameter `<name>.accumulator`
/// (F32, F16 or I8, [rows, cols]), `<name>.beta` (F64, the beta of the next step) and
/// `<name>.scale` (F64, the fixed-point scale; 1 for f32 and f16). `import_state` checks all
/// of it before changing anything: step in [0, INT64_MAX), beta in [0, 1], scale and 1 / scale
/// finite and > 0 as floats, accumulators finite (i8 codes in [-127, 127]).

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"
#include "parameter.hpp"
#include "products.hpp"
#include "state_dict.hpp"

#include "detail/base/checked.hpp"
#include "detail/base/float16.hpp"
#include "detail/products/training.hpp"

namespace mbok {

/// Storage of the Boolean optimizer's accumulators (see the file comment).
enum class AccumulatorType : int { f32 = 0, f16 = 1, i8 = 2 };

/// "f32", "f16" or "i8".
inline constexpr const char* accumulator_name(AccumulatorType t) noexcept {
  switch (t) {
    case AccumulatorType::f32:
      return "f32";
    case AccumulatorType::f16:
      return "f16";
    case AccumulatorType::i8:
      return "i8";
  }
  return "?";
}

/// Parses an accumulator type name ("f32", "f16" or "i8", as `accumulator_name` writes it);
/// throws `InvalidArgument` naming the text and the valid names.
inline AccumulatorType parse_accumulator_type(std::string_view name) {
  for (AccumulatorType t : {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8})
    if (name == accumulator_name(t)) return t;
  throw InvalidArgument(
      detail::concat("mbok: unknown accumulator type '", name, "' (expected f32, f16 or i8)"));
}

/// Bytes per accumulator: 4, 2 or 1.
inline constexpr std::size_t accumulator_size(AccumulatorType t) noexcept {
  return t == AccumulatorType::f32 ? 4 : t == AccumulatorType::f16 ? 2 : 1;
}

/// How the signal q of a tensor is scaled before it enters the accumulator.
enum class SignalScaling : int {
  /// m <- beta m + eta q: eta carries the unit of q, which scales with the layer's scales
  /// (q_ij = s_out_i s_in_j G_ij) and with the loss weights, so one eta drives kernels and
  /// layers with small scales far less than others.
  none = 0,
  /// m <- beta m + eta q / rms(q), rms over the tensor at this step: eta is the push per step,
  /// in units of the threshold, of a signal of typical size, the same in every tensor and
  /// whatever the loss weights (Adam makes the same choice per element; per tensor it costs
  /// no state).
  ///
  /// A tensor whose rms is below FLT_MIN, the smallest normal float (all its values zero or
  /// subnormal), counts as an all-zero signal: eta 0, only the decay by beta applies (its
  /// eta / rms would overflow float, and inf * 0 would put NaN in every accumulator whose
  /// signal is zero). eta / rms is clamped to FLT_MAX, so a tensor with rms just above FLT_MIN
  /// and eta > FLT_MAX * FLT_MIN (about 4) is pushed less than eta per step
  /// (`detail::rms_step_eta`).
  rms = 1,
  /// m <- beta m + eta sign(q): every weight is pushed by eta per step whatever the size of
  /// its signal (a sign-SGD update; Adam's steps behave so once its moments settle).
  sign = 2,
};

/// "none", "rms" or "sign".
inline constexpr const char* signal_scaling_name(SignalScaling s) noexcept {
  return s == SignalScaling::none   ? "none"
         : s == SignalScaling::rms  ? "rms"
         : s == SignalScaling::sign ? "sign"
                                    : "?";
}

/// Parses a signal scaling name ("none", "rms" or "sign", as `signal_scaling_name` writes it);
/// throws `InvalidArgument` naming the text and the valid names.
inline SignalScaling parse_signal_scaling(std::string_view name) {
  for (SignalScaling s : {SignalScaling::none, SignalScaling::rms, SignalScaling::sign})
    if (name == signal_scaling_name(s)) return s;
  throw InvalidArgument(
      detail::concat("mbok: unknown signal scaling '", name, "' (expected none, rms or sign)"));
}

namespace detail {
/// The multiplier of a tensor's signal with `SignalScaling::rms`: eta / rms, or 0 when rms is
/// below FLT_MIN (or not a number), clamped to FLT_MAX so that it is a finite float.
inline double rms_step_eta(double eta, double rms) noexcept {
  if (!(rms >= static_cast<double>(FLT_MIN))) return 0.0;
  return std::min(eta / rms, static_cast<double>(FLT_MAX));
}
}  // namespace detail

/// Options of `BooleanOptimizer`.
struct BooleanOptimizerOptions {
  /// eta, the Boolean learning rate (finite and > 0 as a float: used as one). Its unit is
  /// the signal's (`SignalScaling::none`), the signal's RMS (`SignalScaling::rms`) or 1
  /// (`SignalScaling::sign`).
  double learning_rate = 1.0;
  /// Scaling of each tensor's signal at each step (see `SignalScaling`).
  SignalScaling signal_scaling = SignalScaling::none;
  /// Flip when |m| >= threshold (finite and > 0 as a float; 1 in BOLD; for i8 accumulators
  /// threshold / 64 and 64 / threshold must be floats too).
  double threshold = 1.0;
  /// A fixed beta in [0, 1]; unset means adaptive (1 - last step's flip fraction).
  std::optional<double> beta;
  /// Storage of the accumulators; fixed at construction.
  AccumulatorType accumulator = AccumulatorType::f16;
  /// Key of the stochastic-rounding generator (used by `i8`).
  std::uint64_t seed = 0x6D626F6B5EEDull;
};

/// Flips of one tensor at one step.
struct FlipStats {
  std::string name;
  std::size_t flips = 0;    ///< bits flipped
  std::size_t weights = 0;  ///< rows x cols
  double beta = 0;          ///< the beta used at this step
  double rate() const noexcept {
    return weights ? static_cast<double>(flips) / static_cast<double>(weights) : 0.0;
  }
};

/// Flips of every tensor at one step.
struct BooleanStepStats {
  std::int64_t step = 0;
  std::vector<FlipStats> tensors;
  std::size_t flips() const noexcept {
    std::size_t f = 0;
    for (const auto& t : tensors) f += t.flips;
    return f;
  }
  std::size_t weights() const noexcept {
    std::size_t w = 0;
    for (const auto& t : tensors) w += t.weights;
    return w;
  }
  double rate() const noexcept {
    return weights() ? static_cast<double>(flips()) / static_cast<double>(weights()) : 0.0;
  }
};

/// The Boolean optimizer over a list of `BooleanParameter`s (see parameter.hpp for the
/// ownership rules).
///
/// Each parameter steps on one ISA's products (every ISA flips the same bits): the ISA of the
/// layer it comes from (`BooleanParameter::isa`, set by `BooleanLinear::boolean_parameters`),
/// else the optimizer's `ProductSet`, chosen at construction (the active ISA's by default).
class BooleanOptimizer final : public Optimizer {
 public:
  /// Throws `InvalidArgument` for a bad option, a duplicate name, a null or empty kernel, a
  /// null signal, a signal stride shorter than a row, or a parameter's ISA that is not
  /// available here.
  explicit BooleanOptimizer(std::vector<BooleanParameter> params = {},
                            BooleanOptimizerOptions options = {},
                            ProductSet products = ProductSet())
      : options_(options), products_(products) {
    check_options(options_);
    add_parameters(std::move(params));
  }

  /// Registers more kernels (accumulators start at zero, beta at 0 or the fixed value).
  void add_parameters(std::vector<BooleanParameter> params) {
    std::set<std::string> names;
    for (const auto& s : slots_) names.insert(s.param.name);
    std::vector<ProductSet> sets;
    for (const auto& p : params) {
      sets.push_back(p.isa ? ProductSet(*p.isa) : products_);
      detail::require(p.bits != nullptr && !p.bits->empty(), "BooleanOptimizer: parameter '",
                      p.name, "' has no bits");
      detail::require(p.signal != nullptr, "BooleanOptimizer: parameter '", p.name,
                      "' has no signal");
      detail::require(p.signal_ld >= p.bits->cols(), "BooleanOptimizer: parameter '", p.name,
                      "': signal stride ", p.signal_ld, " < ", p.bits->cols(), " columns");
      detail::require(names.insert(p.name).second, "BooleanOptimizer: duplicate parameter name '",
                      p.name, "'");
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      BooleanParameter& p = params[i];
      Slot s(sets[i]);
      s.rows = p.bits->rows();
      s.cols = p.bits->cols();
      const std::size_t count = s.rows * s.cols;
      switch (options_.accumulator) {
        case AccumulatorType::f32:
          s.f32.assign(count, 0.0f);
          break;
        case AccumulatorType::f16:
          s.f16.assign(count, 0);
          break;
        case AccumulatorType::i8:
          s.i8.assign(count, 0);
          break;
      }
      s.beta = options_.beta ? *options_.beta : 0.0;
      s.scale = options_.accumulator == AccumulatorType::i8 ? options_.threshold / 64.0 : 1.0;
      s.param = std::move(p);
      slots_.push_back(std::move(s));
    }
  }

  const BooleanOptimizerOptions& options() const noexcept { return options_; }
  /// Replaces eta, threshold, beta and seed (the accumulator type cannot change).
  /// Throws `InvalidArgument` for a bad value or a different accumulator type.
  void set_options(const BooleanOptimizerOptions& options) {
    check_options(options);
    detail::require(options.accumulator == options_.accumulator,
                    "BooleanOptimizer: accumulator type is fixed at construction (",
                    accumulator_name(options_.accumulator), "), got ",
                    accumulator_name(options.accumulator));
    options_ = options;
    if (options_.beta)
      for (auto& s : slots_) s.beta = *options_.beta;
  }
  void set_learning_rate(double eta) {
    BooleanOptimizerOptions o = options_;
    o.learning_rate = eta;
    set_options(o);
  }

  std::int64_t step_count() const noexcept { return step_; }
  std::size_t num_parameters() const noexcept { return slots_.size(); }
  /// The products of parameters registered without an ISA of their own.
  const ProductSet& product_set() const noexcept { return products_; }
  /// Former name of `product_set()`.
  const ProductSet& kernel_set() const noexcept { return product_set(); }
  /// The ISA parameter `index` steps on. Throws `InvalidArgument` for a bad index.
  Isa isa(std::size_t index) const {
    detail::require(index < slots_.size(), "BooleanOptimizer: parameter ", index,
                    " does not exist (", slots_.size(), " registered)");
    return slots_[index].products.isa();
  }
  /// Flip statistics of the last step (empty before the first).
  const BooleanStepStats& last_stats() const noexcept { return stats_; }

  /// The accumulator of element (i, j) of parameter `index`, decoded to float.
  float accumulator(std::size_t index, std::size_t i, std::size_t j) const {
    detail::require(index < slots_.size(), "BooleanOptimizer: parameter ", index,
                    " does not exist (", slots_.size(), " registered)");
    const Slot& s = slots_[index];
    detail::require(i < s.rows && j < s.cols, "BooleanOptimizer: element (", i, ", ", j,
                    ") out of range for ", s.rows, " x ", s.cols);
    return load(s, i * s.cols + j);
  }
  /// Sets the accumulators of parameter `index` (e.g. a warm start from the magnitudes a
  /// pretrained layer had); `values` is rows x cols floats, `ld` apart. i8 accumulators round
  /// to the nearest code and saturate at +-127 codes. With an adaptive beta the next step
  /// keeps them (beta 1; adaptive beta starts at 0, which would discard them). Throws
  /// `InvalidArgument` for a bad
  /// index, a stride shorter than a row, or a value that is not finite, before changing
  /// anything.
  void set_accumulators(std::size_t index, const float* values, std::size_t ld) {
    detail::require(index < slots_.size(), "BooleanOptimizer: parameter ", index,
                    " does not exist (", slots_.size(), " registered)");
    Slot& s = slots_[index];
    detail::require(values != nullptr && ld >= s.cols, "BooleanOptimizer: accumulators of '",
                    s.param.name, "' need ", s.cols, " values per row, stride ", ld);
    for (std::size_t i = 0; i < s.rows; ++i)
      for (std::size_t j = 0; j < s.cols; ++j)
        detail::require(std::isfinite(values[i * ld + j]), "BooleanOptimizer: accumulator (", i,
                        ", ", j, ") of '", s.param.name, "' is not finite");
    for (std::size_t i = 0; i < s.rows; ++i)
      for (std::size_t j = 0; j < s.cols; ++j) {
        const float v = values[i * ld + j];
        const std::size_t e = i * s.cols + j;
        switch (options_.accumulator) {
          case AccumulatorType::f32:
            s.f32[e] = std::clamp(v, -3.0e38f, 3.0e38f);
            break;
          case AccumulatorType::f16:
            s.f16[e] = detail::float_to_f16_saturating(v);
            break;
          case AccumulatorType::i8:
            s.i8[e] = static_cast<std::int8_t>(
                std::clamp(std::nearbyint(static_cast<double>(v) / s.scale), -127.0, 127.0));
            break;
        }
      }
    if (!options_.beta) s.beta = 1.0;
  }
  /// Makes parameter `index`, a row slice of a larger tensor, draw the i8 accumulators'
  /// stochastic rounding as an optimizer over the whole tensors does: with the key of its
  /// parameter number `tensor` there and the element indices of rows [first_row, first_row +
  /// rows). A data-parallel trainer whose ranks each step a slice then rounds like one process,
  /// whatever the number of ranks. Default: (index, 0). No effect on f32 and f16 accumulators.
  /// Throws `InvalidArgument` for a bad index.
  void set_rounding_origin(std::size_t index, std::size_t tensor, std::size_t first_row) {
    detail::require(index < slots_.size(), "BooleanOptimizer: parameter ", index,
                    " does not exist (", slots_.size(), " registered)");
    slots_[index].key_tensor = tensor;
    slots_[index].first_row = first_row;
  }

  /// The beta parameter `index` will use at its next step.
  double beta(std::size_t index) const {
    detail::require(index < slots_.size(), "BooleanOptimizer: parameter ", index,
                    " does not exist (", slots_.size(), " registered)");
    return slots_[index].beta;
  }

  /// Sets the beta parameter `index` uses at its next step (a data-parallel step whose
  /// optimizer holds a slice of each tensor sets the beta of the whole tensor's flip
  /// fraction). A fixed beta option replaces it again at the next `set_options`. Throws
  /// `InvalidArgument` for a bad index or a beta outside [0, 1], changing nothing.
  void set_beta(std::size_t index, double beta) {
    detail::require(index < slots_.size(), "BooleanOptimizer: parameter ", index,
                    " does not exist (", slots_.size(), " registered)");
    detail::require(beta >= 0 && beta <= 1, "BooleanOptimizer: beta of '", slots_[index].param.name,
                    "' must be in [0, 1], got ", beta);
    slots_[index].beta = beta;
  }

  /// For the next `step()` only, and only with `SignalScaling::rms`: the RMS of each
  /// parameter's signal (one value per registered parameter, in registration order) to use in
  /// place of the RMS of the signal the optimizer sees. An optimizer that steps a slice of each
  /// tensor passes the whole tensor's RMS, so its step equals the whole tensor's. A value of 0,
  /// or any value below FLT_MIN, means an all-zero signal (eta 0, as the optimizer's own
  /// rule). An empty vector clears it.
  /// Throws `InvalidArgument` for a wrong count or a value that is negative or not finite.
  void set_next_signal_rms(std::vector<double> rms) {
    detail::require(rms.empty() || rms.size() == slots_.size(), "BooleanOptimizer: ", rms.size(),
                    " signal RMS values for ", slots_.size(), " parameters");
    for (std::size_t i = 0; i < rms.size(); ++i)
      detail::require(std::isfinite(rms[i]) && rms[i] >= 0, "BooleanOptimizer: signal RMS of '",
                      slots_[i].param.name, "' must be finite and >= 0, got ", rms[i]);
    next_rms_ = std::move(rms);
  }

  /// One step over every parameter: accumulate eta * Q (scaled per `signal_scaling`), flip,
  /// reset, update beta. Throws `InvalidArgument` naming the parameter, before changing
  /// anything, when a signal holds a NaN or an infinity, or the scaled eta * |q| overflows,
  /// or when the step count is INT64_MAX. All or nothing: when it throws (those errors, or
  /// `std::bad_alloc`) the bits, accumulators, betas, step count, statistics and the RMS set
  /// by `set_next_signal_rms` are as they were.
  void step() override {
    // The multiplier of each tensor's signal: eta, or eta / rms(q). A tensor whose signal is
    // all zero, or whose rms is below FLT_MIN, gets 0 (only the decay by beta applies); eta /
    // rms is at most FLT_MAX, so the float eta is finite and eta * 0 is 0.
    std::vector<double> etas(slots_.size(), options_.learning_rate);
    for (std::size_t idx = 0; idx < slots_.size(); ++idx) {
      const Slot& s = slots_[idx];
      const auto q = signal_map(s);
      // The largest |q| and the finiteness check in one pass: the bits of |q| order like the
      // values, and a NaN or an infinity has a pattern >= 0x7F800000.
      const std::uint32_t peak_bits =
          s.products.table().max_abs_bits(s.param.signal, s.param.signal_ld, s.rows, s.cols);
      detail::require(peak_bits < 0x7F800000u, "BooleanOptimizer: signal of '", s.param.name,
                      "' is not finite");
      if (options_.signal_scaling == SignalScaling::rms) {
        const double rms = !next_rms_.empty() ? next_rms_[idx]
                                              : std::sqrt(q.template cast<double>().squaredNorm() /
                                                          static_cast<double>(s.rows * s.cols));
        etas[idx] = detail::rms_step_eta(options_.learning_rate, rms);
      }
      const double peak = options_.signal_scaling == SignalScaling::sign
                              ? etas[idx]
                              : static_cast<double>(detail::bits_float(peak_bits)) * etas[idx];
      detail::require(peak < 1e30, "BooleanOptimizer: eta * |q| of '", s.param.name, "' reaches ",
                      peak, " (overflow)");
    }
    detail::require(step_ < INT64_MAX, "BooleanOptimizer: the step count ", step_,
                    " cannot grow (int64 overflow)");
    // Everything that allocates (the statistics and their names) comes before the first
    // accumulator changes: a failure leaves the optimizer as it was. The steps of the slots
    // themselves do not throw.
    BooleanStepStats next;
    next.step = step_ + 1;
    next.tensors.resize(slots_.size());
    for (std::size_t idx = 0; idx < slots_.size(); ++idx) {
      FlipStats& f = next.tensors[idx];
      f.name = slots_[idx].param.name;
      f.weights = slots_[idx].rows * slots_[idx].cols;
      f.beta = slots_[idx].beta;
    }
    // The generator key of i8 accumulators depends on the step's number.
    ++step_;
    for (std::size_t idx = 0; idx < slots_.size(); ++idx) {
      Slot& s = slots_[idx];
      FlipStats& f = next.tensors[idx];
      f.flips = step_slot(s, idx, static_cast<float>(etas[idx]));
      s.beta = options_.beta ? *options_.beta : 1.0 - f.rate();
    }
    stats_ = std::move(next);
    next_rms_.clear();
  }

  void export_state(StateDict& dict, const std::string& prefix) const override {
    dict[prefix + "step"] = Tensor::scalar<std::int64_t>(step_);
    dict[prefix + "seed"] = Tensor::scalar<std::int64_t>(static_cast<std::int64_t>(options_.seed));
    dict[prefix + "accumulator_type"] =
        Tensor::scalar<std::int64_t>(static_cast<std::int64_t>(options_.accumulator));
    for (const auto& s : slots_) {
      Tensor t;
      t.dtype = acc_dtype();
      t.shape = {static_cast<std::int64_t>(s.rows), static_cast<std::int64_t>(s.cols)};
      t.bytes.resize(s.acc_bytes());  // little-endian on every supported target
      std::memcpy(t.bytes.data(), s.acc_data(), t.bytes.size());
      dict[prefix + s.param.name + ".accumulator"] = std::move(t);
      dict[prefix + s.param.name + ".beta"] = Tensor::scalar<double>(s.beta);
      dict[prefix + s.param.name + ".scale"] = Tensor::scalar<double>(s.scale);
    }
  }

  void import_state(const StateDict& dict, const std::string& prefix) override {
    // Check everything before changing anything.
    const auto step = read_scalar<std::int64_t>(dict, prefix + "step");
    const auto seed = read_scalar<std::int64_t>(dict, prefix + "seed");
    const auto type = read_scalar<std::int64_t>(dict, prefix + "accumulator_type");
    detail::require_format(step >= 0 && step < INT64_MAX, "state: '", prefix, "step' is ", step,
                           " (must be in [0, INT64_MAX))");
    detail::require_format(type == static_cast<std::int64_t>(options_.accumulator), "state: '",
                           prefix, "accumulator_type' is ", type, ", this optimizer uses ",
                           static_cast<int>(options_.accumulator), " (",
                           accumulator_name(options_.accumulator), ")");
    std::vector<double> betas, scales;
    for (const auto& s : slots_) {
      const std::string acc_name = prefix + s.param.name + ".accumulator";
      const Tensor& acc =
          expect_tensor(dict, acc_name, acc_dtype(),
                        {static_cast<std::int64_t>(s.rows), static_cast<std::int64_t>(s.cols)});
      check_accumulator(acc, acc_name);
      const auto b = read_scalar<double>(dict, prefix + s.param.name + ".beta");
      const auto sc = read_scalar<double>(dict, prefix + s.param.name + ".scale");
      detail::require_format(b >= 0 && b <= 1, "state: '", prefix, s.param.name,
                             ".beta' must be in [0, 1], got ", b);
      // Used as a float and divided into 1 / scale as a float (i8): both must be finite and
      // > 0 as floats (1e-300 would become 0 and its inverse inf).
      detail::require_format(detail::positive_as_float(sc) && detail::positive_as_float(1.0 / sc),
                             "state: '", prefix, s.param.name,
                             ".scale' must be finite and > 0 as a float, with a finite float ",
                             "inverse, got ", sc);
      betas.push_back(b);
      scales.push_back(sc);
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      const Tensor& t = dict.at(prefix + s.param.name + ".accumulator");
      std::memcpy(s.acc_data(), t.bytes.data(), t.bytes.size());
      s.beta = betas[i];
      s.scale = scales[i];
    }
    step_ = step;
    options_.seed = static_cast<std::uint64_t>(seed);
  }

  /// Accumulators plus per-tensor and global scalars.
  std::size_t state_bytes() const override {
    std::size_t bytes = sizeof(step_) + sizeof(options_.seed);
    for (const auto& s : slots_) bytes += s.acc_bytes() + sizeof(s.beta) + sizeof(s.scale);
    return bytes;
  }
  /// Bytes of accumulators alone.
  std::size_t accumulator_bytes() const noexcept {
    std::size_t bytes = 0;
    for (const auto& s : slots_) bytes += s.acc_bytes();
    return bytes;
  }
  /// Trainable Boolean weights registered.
  std::size_t num_weights() const noexcept {
    std::size_t w = 0;
    for (const auto& s : slots_) w += s.rows * s.cols;
    return w;
  }
  /// accumulator_bytes() / num_weights(): 4, 2 or 1.
  double accumulator_bytes_per_weight() const noexcept {
    return num_weights()
               ? static_cast<double>(accumulator_bytes()) / static_cast<double>(num_weights())
               : 0.0;
  }

 private:
  struct Slot {
    explicit Slot(ProductSet k) : products(k) {}
    ProductSet products;  // the products this tensor steps on
    BooleanParameter param;
    std::size_t rows = 0, cols = 0;
    // rows * cols accumulators, row-major, in the vector of the optimizer's type only.
    std::vector<float> f32;
    std::vector<std::uint16_t> f16;
    std::vector<std::int8_t> i8;
    double beta = 0;
    double scale = 1;  // fixed-point step of i8
    // i8 rounding: the generator key's parameter number and the row of element 0
    // (set_rounding_origin).
    std::size_t key_tensor = SIZE_MAX, first_row = 0;
    std::size_t acc_bytes() const noexcept {
      return f32.size() * sizeof(float) + f16.size() * sizeof(std::uint16_t) + i8.size();
    }
    void* acc_data() noexcept {
      return !f32.empty()   ? static_cast<void*>(f32.data())
             : !f16.empty() ? static_cast<void*>(f16.data())
                            : static_cast<void*>(i8.data());
    }
    const void* acc_data() const noexcept { return const_cast<Slot*>(this)->acc_data(); }
  };

  using SignalMap =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                 Eigen::OuterStride<>>;
  static SignalMap signal_map(const Slot& s) {
    return SignalMap(s.param.signal, static_cast<Eigen::Index>(s.rows),
                     static_cast<Eigen::Index>(s.cols),
                     Eigen::OuterStride<>(static_cast<Eigen::Index>(s.param.signal_ld)));
  }

  DType acc_dtype() const noexcept {
    return options_.accumulator == AccumulatorType::f32   ? DType::f32
           : options_.accumulator == AccumulatorType::f16 ? DType::f16
                                                          : DType::i8;
  }

  float load(const Slot& s, std::size_t e) const {
    switch (options_.accumulator) {
      case AccumulatorType::f32:
        return s.f32[e];
      case AccumulatorType::f16:
        return f16_to_float(s.f16[e]);
      case AccumulatorType::i8:
        return static_cast<float>(s.i8[e]) * static_cast<float>(s.scale);
    }
    return 0.0f;
  }

  // One tensor's step on its products (detail/products/training.hpp); the flip rule is
  // written once per ISA, bit for bit the scalar one (kernels/scalar/training.hpp).
  std::size_t step_slot(Slot& s, std::size_t idx, float eta) {
    MutableBitMatrixView bits = s.param.bits->mutable_view();
    detail::BooleanStepArgs args{};
    args.bits = bits.row(0);
    args.stride = bits.stride_words();
    args.q = s.param.signal;
    args.ld = s.param.signal_ld;
    args.cols = s.cols;
    args.acc = s.acc_data();
    args.beta = static_cast<float>(s.beta);
    args.eta = eta;
    args.threshold = static_cast<float>(options_.threshold);
    args.sign_only = options_.signal_scaling == SignalScaling::sign;
    args.scale = 1.0f;
    args.inv = 1.0f;
    detail::StepCodec codec = detail::StepCodec::f32;
    if (options_.accumulator == AccumulatorType::f16) codec = detail::StepCodec::f16;
    if (options_.accumulator == AccumulatorType::i8) {
      codec = detail::StepCodec::i8;
      args.scale = static_cast<float>(s.scale);
      args.inv = static_cast<float>(1.0 / s.scale);
      // The generator key depends on the seed, the step and the tensor.
      args.key = detail::splitmix64(
          options_.seed ^ detail::splitmix64(static_cast<std::uint64_t>(step_) * 0x100000001B3ull +
                                             (s.key_tensor == SIZE_MAX ? idx : s.key_tensor)));
      if (s.first_row != 0 && s.rows != 0) {
        // The kernels number element (i, j) i * cols + j from the addresses they are given:
        // addresses first_row rows before the slice and rows [first_row, first_row + rows)
        // give the whole tensor's numbers; only the slice's rows are touched.
        const std::size_t f = s.first_row;
        const auto back = [f](auto* p, std::size_t row_bytes) {
          return reinterpret_cast<decltype(p)>(reinterpret_cast<std::uintptr_t>(p) - f * row_bytes);
        };
        args.bits = back(args.bits, args.stride * sizeof(std::uint64_t));
        args.q = back(args.q, args.ld * sizeof(float));
        args.acc = back(static_cast<std::int8_t*>(args.acc), args.cols);
        const auto rows_step = s.products.table().boolean_step_rows[static_cast<int>(codec)];
        std::atomic<std::size_t> total{0};
        parallel_for(f, f + s.rows, std::max<std::size_t>(1, (std::size_t{1} << 15) / s.cols),
                     [&](std::size_t r0, std::size_t r1) {
                       total.fetch_add(rows_step(args, r0, r1), std::memory_order_relaxed);
                     });
        return total.load();
      }
    }
    return detail::boolean_step(s.products.table(), codec, args, s.rows);
  }

  // A NaN accumulator never compares >= threshold (its weight would never flip again) and an
  // infinite one flips at once: imported accumulators must be finite, and i8 codes in the
  // range the optimizer writes, [-127, 127].
  void check_accumulator(const Tensor& t, const std::string& name) const {
    const std::size_t count = t.bytes.size() / accumulator_size(options_.accumulator);
    for (std::size_t e = 0; e < count; ++e) {
      const std::uint8_t* p = t.bytes.data() + e * accumulator_size(options_.accumulator);
      bool ok = true;
      double value = 0;
      switch (options_.accumulator) {
        case AccumulatorType::f32: {
          float v;
          std::memcpy(&v, p, sizeof v);
          ok = std::isfinite(v);
          value = static_cast<double>(v);
          break;
        }
        case AccumulatorType::f16: {
          std::uint16_t h;
          std::memcpy(&h, p, sizeof h);
          ok = (h & 0x7c00u) != 0x7c00u;  // exponent all ones: infinity or NaN
          value = static_cast<double>(f16_to_float(h));
          break;
        }
        case AccumulatorType::i8: {
          const auto code = static_cast<std::int8_t>(*p);
          ok = code >= -127;
          value = code;
          break;
        }
      }
      if (!ok) {
        const auto cols = static_cast<std::size_t>(t.shape.at(1));
        throw FormatError(detail::concat("mbok: state: tensor '", name, "' element (", e / cols,
                                         ", ", e % cols, ") is ", value,
                                         options_.accumulator == AccumulatorType::i8
                                             ? " (i8 accumulator codes must be in [-127, 127])"
                                             : " (accumulators must be finite)"));
      }
    }
  }

  static void check_options(const BooleanOptimizerOptions& o) {
    // eta and the threshold are used as floats: checked as floats, so a rate beyond FLT_MAX
    // cannot become inf and a threshold below the smallest float cannot become 0 (which
    // would flip every +1 weight with a zero signal at every step).
    detail::require(detail::positive_as_float(o.learning_rate),
                    "BooleanOptimizer: learning rate (eta) must be finite and > 0 as a float, got ",
                    o.learning_rate);
    detail::require(detail::positive_as_float(o.threshold),
                    "BooleanOptimizer: threshold must be finite and > 0 as a float, got ",
                    o.threshold);
    // i8 keeps m = code * threshold / 64 and divides by that step, both in float.
    detail::require(
        o.accumulator != AccumulatorType::i8 || (detail::positive_as_float(o.threshold / 64.0) &&
                                                 detail::positive_as_float(64.0 / o.threshold)),
        "BooleanOptimizer: threshold ", o.threshold,
        " is too small for i8 accumulators (threshold / 64 and its inverse must be floats)");
    detail::require(o.accumulator != AccumulatorType::f16 || o.threshold <= 65504.0,
                    "BooleanOptimizer: threshold ", o.threshold,
                    " is beyond the largest f16 accumulator (65504)");
    if (o.beta)
      detail::require(*o.beta >= 0 && *o.beta <= 1,
                      "BooleanOptimizer: fixed beta must be in [0, 1], got ", *o.beta);
    detail::require(
        o.signal_scaling == SignalScaling::none || o.signal_scaling == SignalScaling::rms ||
            o.signal_scaling == SignalScaling::sign,
        "BooleanOptimizer: unknown signal scaling ", static_cast<int>(o.signal_scaling));
    detail::require(o.accumulator == AccumulatorType::f32 ||
                        o.accumulator == AccumulatorType::f16 ||
                        o.accumulator == AccumulatorType::i8,
                    "BooleanOptimizer: unknown accumulator type ", static_cast<int>(o.accumulator));
  }

  BooleanOptimizerOptions options_;
  ProductSet products_;
  std::vector<Slot> slots_;
  std::int64_t step_ = 0;
  BooleanStepStats stats_;
  std::vector<double> next_rms_;  // set_next_signal_rms: the next step's RMS per parameter
};

}  // namespace mbok
