#pragma once
/// \file
/// `AdamW` for full-precision parameters (Loshchilov and Hutter): Adam moments with bias
/// correction and decoupled weight decay,
///
///     m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
///     p <- p - lr * ( (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * p )
///
/// with weight decay only on parameters registered with `weight_decay = true`.
/// State (export_state): `<prefix>step` (I64 scalar, in [0, INT64_MAX)) and, per parameter,
/// `<prefix><name>.exp_avg` and `<prefix><name>.exp_avg_sq` (F32, the parameter's shape).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "parallel.hpp"
#include "parameter.hpp"
#include "state_dict.hpp"

#include "detail/base/checked.hpp"
#include "detail/base/finite.hpp"

namespace mbok {

/// Options of `AdamW`; every value is used as a float and must be finite as one, with
/// lr >= 0, 0 <= beta < 1 (after rounding to float), eps > 0 (not rounding to 0), wd >= 0.
struct AdamWOptions {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

/// AdamW over a list of `Parameter`s (see parameter.hpp for the ownership rules).
class AdamW final : public Optimizer {
 public:
  /// Throws `InvalidArgument` for a bad option, a duplicate name, a null pointer or a shape
  /// with a negative dimension, a product that overflows or a product that is not the size.
  explicit AdamW(std::vector<Parameter> params = {}, AdamWOptions options = {})
      : options_(options) {
    check_options(options_);
    add_parameters(std::move(params));
  }

  /// Registers more parameters (their moments start at zero).
  void add_parameters(std::vector<Parameter> params) {
    std::set<std::string> names;
    for (const auto& s : slots_) names.insert(s.param.name);
    for (const auto& p : params) {
      detail::require(p.value != nullptr && p.grad != nullptr, "AdamW: parameter '", p.name,
                      "' has a null value or gradient");
      detail::require(p.size > 0, "AdamW: parameter '", p.name, "' is empty");
      // Every dimension >= 0 and a product that does not wrap ({-1, -1} would be 1).
      std::size_t prod = 1;
      bool valid = !p.shape.empty();
      for (auto d : p.shape)
        valid = valid && d >= 0 && detail::checked_mul(prod, static_cast<std::size_t>(d), prod);
      detail::require(valid, "AdamW: parameter '", p.name,
                      "' has an empty shape, a negative dimension or an element count that "
                      "overflows");
      detail::require(prod == p.size, "AdamW: parameter '", p.name, "' has shape of ", prod,
                      " elements for size ", p.size);
      detail::require(names.insert(p.name).second, "AdamW: duplicate parameter name '", p.name,
                      "'");
    }
    // Allocate every new slot before registering any: all or nothing.
    std::vector<Slot> added(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      added[i].exp_avg.assign(params[i].size, 0.0f);
      added[i].exp_avg_sq.assign(params[i].size, 0.0f);
      added[i].param = params[i];
    }
    slots_.reserve(slots_.size() + added.size());
    for (auto& s : added) slots_.push_back(std::move(s));
  }

  const AdamWOptions& options() const noexcept { return options_; }
  /// Replaces the options (for a learning-rate schedule); checked like the constructor's.
  void set_options(const AdamWOptions& options) {
    check_options(options);
    options_ = options;
  }
  void set_learning_rate(double lr) {
    AdamWOptions o = options_;
    o.learning_rate = lr;
    set_options(o);
  }

  /// Steps taken so far.
  std::int64_t step_count() const noexcept { return step_; }
  std::size_t num_parameters() const noexcept { return slots_.size(); }

  /// One AdamW update of every parameter. Throws `InvalidArgument` naming the parameter,
  /// before changing anything, when a gradient holds a NaN or an infinity.
  void step() override {
    for (const auto& s : slots_) {
      detail::require(detail::all_finite(s.param.grad, 1, s.param.size, s.param.size),
                      "AdamW: gradient of '", s.param.name, "' is not finite");
    }
    detail::require(step_ < INT64_MAX, "AdamW: the step count ", step_,
                    " cannot grow (int64 overflow)");
    ++step_;
    const double b1 = options_.beta1, b2 = options_.beta2;
    const auto bc1 = static_cast<float>(1.0 - std::pow(b1, static_cast<double>(step_)));
    const auto bc2 = static_cast<float>(1.0 - std::pow(b2, static_cast<double>(step_)));
    const auto lr = static_cast<float>(options_.learning_rate);
    const auto eps = static_cast<float>(options_.eps);
    const auto fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
    for (auto& s : slots_) {
      const float wd = s.param.weight_decay ? static_cast<float>(options_.weight_decay) : 0.0f;
      float* p = s.param.value;
      const float* g = s.param.grad;
      float* m = s.exp_avg.data();
      float* v = s.exp_avg_sq.data();
      parallel_for(0, s.param.size, 1 << 15, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
          m[i] = fb1 * m[i] + (1.0f - fb1) * g[i];
          v[i] = fb2 * v[i] + (1.0f - fb2) * g[i] * g[i];
          const float update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
          p[i] -= lr * (update + wd * p[i]);
        }
      });
    }
  }

  void export_state(StateDict& dict, const std::string& prefix) const override {
    dict[prefix + "step"] = Tensor::scalar<std::int64_t>(step_);
    for (const auto& s : slots_) {
      dict[prefix + s.param.name + ".exp_avg"] = Tensor::from(s.exp_avg.data(), s.param.shape);
      dict[prefix + s.param.name + ".exp_avg_sq"] =
          Tensor::from(s.exp_avg_sq.data(), s.param.shape);
    }
  }

  void import_state(const StateDict& dict, const std::string& prefix) override {
    // Check every tensor before changing anything.
    const auto step = read_scalar<std::int64_t>(dict, prefix + "step");
    detail::require_format(step >= 0 && step < INT64_MAX, "state: '", prefix, "step' is ", step,
                           " (must be in [0, INT64_MAX))");
    for (const auto& s : slots_) {
      const std::string avg = prefix + s.param.name + ".exp_avg";
      const std::string avg_sq = prefix + s.param.name + ".exp_avg_sq";
      check_moment(expect_tensor(dict, avg, DType::f32, s.param.shape), avg, false);
      check_moment(expect_tensor(dict, avg_sq, DType::f32, s.param.shape), avg_sq, true);
    }
    for (auto& s : slots_) {
      read_tensor(dict, prefix + s.param.name + ".exp_avg", s.param.shape, s.exp_avg.data());
      read_tensor(dict, prefix + s.param.name + ".exp_avg_sq", s.param.shape, s.exp_avg_sq.data());
    }
    step_ = step;
  }

  /// Two float moments per parameter element.
  std::size_t state_bytes() const override {
    std::size_t bytes = sizeof(step_);
    for (const auto& s : slots_) bytes += 2 * s.param.size * sizeof(float);
    return bytes;
  }

 private:
  struct Slot {
    Parameter param;
    std::vector<float> exp_avg;
    std::vector<float> exp_avg_sq;
  };

  // Moments must be finite, and second moments >= 0: sqrt of a negative one is NaN, which
  // would spread into the parameter at the next step.
  static void check_moment(const Tensor& t, const std::string& name, bool second) {
    const std::size_t count = t.bytes.size() / sizeof(float);
    for (std::size_t i = 0; i < count; ++i) {
      float v;
      std::memcpy(&v, t.bytes.data() + i * sizeof(float), sizeof v);
      detail::require_format(
          std::isfinite(v) && (!second || v >= 0.0f), "state: tensor '", name, "' element ", i,
          " is ", v,
          second ? " (second moments must be finite and >= 0)" : " (moments must be finite)");
    }
  }

  // Every option is used as a float in step(): checked as a float (a learning rate beyond
  // FLT_MAX would become inf, an eps below the smallest float 0, a beta2 just under 1 would
  // round to 1 and freeze the second moment).
  static void check_options(const AdamWOptions& o) {
    detail::require(detail::non_negative_as_float(o.learning_rate),
                    "AdamW: learning rate must be finite and >= 0 as a float, got ",
                    o.learning_rate);
    detail::require(o.beta1 >= 0 && o.beta1 < 1 && static_cast<float>(o.beta1) < 1.0f,
                    "AdamW: beta1 must be in [0, 1) as a float, got ", o.beta1);
    detail::require(o.beta2 >= 0 && o.beta2 < 1 && static_cast<float>(o.beta2) < 1.0f,
                    "AdamW: beta2 must be in [0, 1) as a float, got ", o.beta2);
    detail::require(detail::positive_as_float(o.eps),
                    "AdamW: eps must be finite and > 0 as a float, got ", o.eps);
    detail::require(detail::non_negative_as_float(o.weight_decay),
                    "AdamW: weight decay must be finite and >= 0 as a float, got ", o.weight_decay);
  }

  AdamWOptions options_;
  std::vector<Slot> slots_;
  std::int64_t step_ = 0;
};

}  // namespace mbok
