#pragma once
/// \file
/// `PackedLinear`: the inference form of a Boolean layer, y = sum_k s_out_k (.) (B_k (x (.)
/// s_in_k)) + b, that holds its K kernels once, repacked for the table-lookup products of one
/// `ProductSet` (`Int8PreparedWeights`), with their scales and the bias.
///
/// A `BooleanLinear` keeps the bits (what training flips) and, for `forward_int8`, a repacked
/// copy of them: two copies of the weights. A decoder needs only the repacked one, and the
/// repacking is a bijection, so this form keeps nothing else and loses nothing (`unpack`
/// gives the trainable layer back, bit for bit). Its kernels may be borrowed from a mapped
/// mbok file stored in the same layout (`MbokModel::load_packed`): then a model starts with
/// no repack and no copy.
///
/// Products: `forward_int8` (the table lookup at every token count, blocked over tokens whose
/// tables stay in L2) and `forward` (float activations: the float table lookup for few
/// tokens). Results equal `BooleanLinear`'s `forward_int8` with `Int8Algorithm::lut` bit for
/// bit, and its `forward` within float rounding.

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "bit_matrix.hpp"
#include "boolean_linear.hpp"
#include "error.hpp"
#include "forward_float.hpp"
#include "forward_int8.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"
#include "products.hpp"

namespace mbok {

/// The inference form of a float Boolean layer (see the file comment). Movable; copies share
/// nothing (the kernels are repacked copies or borrowed views, both read-only).
class PackedLinear {
 public:
  using Vector = Eigen::VectorXf;

  PackedLinear() = default;

  /// Repacks `w` (and takes `bias`: empty or m entries) for `kernels`. Throws
  /// `InvalidArgument` for K = 0, n > kMaxInt8Features, a bias of another size, or a
  /// non-finite scale or bias.
  PackedLinear(const MultiKernelWeights<float>& w, Vector bias = Vector(),
               const ProductSet& products = ProductSet())
      : PackedLinear(Int8PreparedWeights(w, products), scales(w, true), scales(w, false),
                     std::move(bias)) {}

  /// The inference form of `layer`, on the layer's kernels (its bits are copied into the
  /// repacked form; drop the layer afterwards to keep one copy).
  explicit PackedLinear(const BooleanLinear<float>& layer)
      : PackedLinear(layer.weights(), layer.has_bias() ? layer.bias() : Vector(),
                     layer.product_set()) {}

  /// From kernels already repacked (e.g. borrowed from a mapped file) and their scales:
  /// `s_out[k]` m entries, `s_in[k]` n entries, `bias` empty or m. Throws `InvalidArgument`
  /// for a count or size that does not match, or a non-finite scale or bias.
  PackedLinear(Int8PreparedWeights packed, std::vector<Vector> s_out, std::vector<Vector> s_in,
               Vector bias = Vector())
      : packed_(std::move(packed)),
        s_out_(std::move(s_out)),
        s_in_(std::move(s_in)),
        bias_(std::move(bias)) {
    const std::size_t k_count = packed_.num_kernels(), m = out_features(), n = in_features();
    detail::require(k_count > 0, "PackedLinear: no kernels");
    detail::require(s_out_.size() == k_count && s_in_.size() == k_count, "PackedLinear: ", k_count,
                    " kernels but ", s_out_.size(), " s_out and ", s_in_.size(), " s_in vectors");
    for (std::size_t k = 0; k < k_count; ++k) {
      detail::require(static_cast<std::size_t>(s_out_[k].size()) == m &&
                          static_cast<std::size_t>(s_in_[k].size()) == n,
                      "PackedLinear: kernel ", k, " scales have ", s_out_[k].size(), " and ",
                      s_in_[k].size(), " entries, expected ", m, " and ", n);
      detail::require(s_out_[k].allFinite() && s_in_[k].allFinite(), "PackedLinear: kernel ", k,
                      " has a non-finite scale");
    }
    detail::require(bias_.size() == 0 || static_cast<std::size_t>(bias_.size()) == m,
                    "PackedLinear: bias has ", bias_.size(), " entries, expected ", m);
    detail::require(bias_.allFinite(), "PackedLinear: bias is not finite");
  }

  std::size_t out_features() const noexcept { return packed_.out_features(); }
  std::size_t in_features() const noexcept { return packed_.in_features(); }
  std::size_t num_kernels() const noexcept { return packed_.num_kernels(); }
  /// The repacked kernels (and the `ProductSet` they run on).
  const Int8PreparedWeights& packed() const noexcept { return packed_; }
  const ProductSet& product_set() const noexcept { return packed_.products(); }
  /// Former name of `product_set()`.
  const ProductSet& kernel_set() const noexcept { return product_set(); }
  const Vector& s_out(std::size_t k) const { return s_out_.at(check(k)); }
  const Vector& s_in(std::size_t k) const { return s_in_.at(check(k)); }
  bool has_bias() const noexcept { return bias_.size() != 0; }
  /// The bias (empty without one).
  const Vector& bias() const noexcept { return bias_; }

  /// Bytes held in memory or mapped: repacked kernels, scales, bias.
  std::size_t bytes() const noexcept {
    std::size_t b = static_cast<std::size_t>(bias_.size()) * sizeof(float);
    for (std::size_t k = 0; k < num_kernels(); ++k)
      b += packed_.kernel(k).bytes() + (out_features() + in_features()) * sizeof(float);
    return b;
  }

  /// y (t rows of m floats, `ldy` apart; overwritten) = the layer on t tokens of x (rows of
  /// n floats, `ldx` apart) with int8 activations, by table lookup (`ws`: the caller's
  /// workspace, one per concurrent caller). Throws `InvalidArgument` for short strides, null
  /// pointers or a non-finite input.
  void forward_int8(const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                    Int8ForwardWorkspace& ws) const {
    using detail::Int8Forward;
    Int8Forward::check_input(*this, x, ldx, t);
    Int8Forward::check_output(out_features(), t, y, ldy, 0, out_features());
    if (t == 0) return;
    Int8Forward::run(*this, packed_, x, ldx, t, y, ldy, ws, true);
    add_bias(y, ldy, t);
  }

  /// y = the layer on t tokens of x with float activations (as `BooleanLinear::forward`,
  /// within float rounding: the sums run in another order). Few tokens (t <=
  /// product_set().lut_f32_max_tokens()) run the float table lookup over the packed kernels
  /// (error bound in forward_float.hpp); more unpack the bits of 64 rows at a time into a
  /// per-thread buffer and run the sign products on 64 tokens at a time, so nothing but the
  /// packed form stays in memory. Throws `InvalidArgument` for short strides or null pointers.
  void forward(const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy) const {
    const std::size_t m = out_features(), n = in_features();
    detail::require(num_kernels() > 0, "PackedLinear: empty layer");
    detail::require(ldx >= n && ldy >= m, "PackedLinear forward: strides ", ldx, ", ", ldy,
                    " shorter than rows of ", n, ", ", m);
    detail::require(t == 0 || (x != nullptr && y != nullptr),
                    "PackedLinear forward: null input or output");
    detail::require_addressable(t, ldx, n, sizeof(float), "PackedLinear forward: input");
    detail::require_addressable(t, ldy, m, sizeof(float), "PackedLinear forward: output");
    if (t == 0) return;
    if (t <= product_set().lut_f32_max_tokens()) {
      const detail::LutF32Operands ops(*this, packed_);
      detail::lut_forward_f32(product_set().table(), num_kernels(), ops.s_out.data(),
                              ops.s_in.data(), ops.w.data(), m, x, ldx, t, y, ldy);
      add_bias(y, ldy, t);
      return;
    }
    // Tokens in blocks of 64: x (.) s_in_k of a block for every kernel (2 MiB at n = 4096, K =
    // 2), read by every thread; each thread unpacks 64 rows at a time and multiplies them.
    const std::size_t ld_xs = padded_row_words(n) * 64, tokens = 64;
    std::vector<float> xs(num_kernels() * std::min(t, tokens) * ld_xs);
    const detail::ProductTable& table = product_set().table();
    for (std::size_t i0 = 0; i0 < t; i0 += tokens) {
      const std::size_t tb = std::min(tokens, t - i0);
      for (std::size_t k = 0; k < num_kernels(); ++k)
        detail::scale_tokens(x + i0 * ldx, ldx, tb, s_in_[k].data(), n, xs.data() + k * tb * ld_xs,
                             ld_xs);
      const std::size_t grain = std::max<std::size_t>(
          kFloatRowBlock,
          (std::size_t{1} << 18) / std::max<std::size_t>(1, num_kernels() * tb * n));
      float* yb = y + i0 * ldy;
      parallel_for(
          0, m, grain,
          [&](std::size_t j0, std::size_t j1) {
            BitMatrix bits(std::min(kFloatRowBlock, j1 - j0), n);
            for (std::size_t i = 0; i < tb; ++i)
              std::fill(yb + i * ldy + j0, yb + i * ldy + j1, 0.0f);
            for (std::size_t jb = j0; jb < j1; jb += kFloatRowBlock) {
              const std::size_t nr = std::min(kFloatRowBlock, j1 - jb);
              const MutableBitMatrixView block = bits.mutable_view().middle_rows(0, nr);
              for (std::size_t k = 0; k < num_kernels(); ++k) {
                detail::lut_unpack(packed_.kernel(k).view(), jb, block);
                table.sign_gemm_acc_f32(xs.data() + k * tb * ld_xs, ld_xs, tb, block,
                                        s_out_[k].data() + jb, yb + jb, ldy, 0, nr);
              }
            }
          },
          detail::kLutTileRows);
    }
    add_bias(y, ldy, t);
  }

  /// The kernels and scales as trainable weights (the bits recovered exactly).
  MultiKernelWeights<float> unpack_weights() const {
    MultiKernelWeights<float> w(out_features(), in_features());
    for (std::size_t k = 0; k < num_kernels(); ++k)
      w.add_kernel(packed_.kernel(k).unpack(), s_out_[k], s_in_[k]);
    return w;
  }
  /// The trainable layer this form was packed from (bits, scales and bias equal), on the same
  /// kernels.
  BooleanLinear<float> unpack(BooleanLinearOptions options = {}) const {
    if (has_bias()) return BooleanLinear<float>(unpack_weights(), bias_, options, product_set());
    return BooleanLinear<float>(unpack_weights(), options, product_set());
  }

 private:
  static constexpr std::size_t kFloatRowBlock = 64;

  static std::vector<Vector> scales(const MultiKernelWeights<float>& w, bool out) {
    std::vector<Vector> v;
    for (std::size_t k = 0; k < w.num_kernels(); ++k) v.push_back(out ? w.s_out(k) : w.s_in(k));
    return v;
  }
  std::size_t check(std::size_t k) const {
    detail::require(k < num_kernels(), "PackedLinear: kernel ", k, " of ", num_kernels());
    return k;
  }
  void add_bias(float* y, std::size_t ldy, std::size_t t) const {
    if (!has_bias()) return;
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < out_features(); ++j)
        y[i * ldy + j] += bias_[static_cast<Eigen::Index>(j)];
  }

  Int8PreparedWeights packed_;
  std::vector<Vector> s_out_, s_in_;
  Vector bias_;
};

}  // namespace mbok
