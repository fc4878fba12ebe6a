#pragma once
// A K = 2 format whose two kernels share their input scale and whose output scales have a
// fixed ratio c (docs/prefill.md, "Against IQ2_BN_R4"):
//
//     W  ~  (s_out s_in^T) (.) (B1 + c B2),     B1, B2 in {+1, -1}^{m x n}
//
// i.e. kernel 1 = (B1, s_out, s_in) and kernel 2 = (B2, c s_out, s_in) of the library's
// multi-kernel layout, so that each weight is one of four levels +-(1 + c), +-(1 - c) times a
// rank-1 scale: one 2-bit code that an int8 product reads in one pass (c = p/q rational:
// q (b1 + c b2) = q b1 + p b2 is an exact small integer). The post-training fit and the
// projection that keeps a finetuned layer on the format are here; shared_scales.cpp measures
// what the constraint costs against free K = 2 scales.

#include <mbok/bit_matrix.hpp>
#include <mbok/boolean_linear.hpp>

#include <Eigen/Core>

#include <string>

namespace tiny {

/// A ratio c = p / q of the second kernel's output scale to the first's, 0 < c < 1.
struct ScaleRatio {
  int p = 1, q = 2;
  double value() const { return double(p) / double(q); }
  /// "1/2".
  std::string label() const { return std::to_string(p) + "/" + std::to_string(q); }
  /// The four int8 levels of the code, q (b1 + c b2): "{+-3, +-1}".
  std::string levels() const {
    return "{+-" + std::to_string(q + p) + ", +-" + std::to_string(q - p) + "}";
  }
};

/// Parses "p/q" with integers 0 < p < q and q + p <= 127 (the largest level fits int8).
/// Throws `mbok::InvalidArgument` otherwise.
ScaleRatio parse_ratio(const std::string& text);

/// A fitted shared-scale K = 2 weight: kernel 1 = (b1, s_out, s_in), kernel 2 = (b2,
/// c s_out, s_in).
struct SharedScaleFit {
  Eigen::MatrixXf b1, b2;       ///< m x n signs (+-1)
  Eigen::VectorXf s_out, s_in;  ///< m and n entries
  double relative_error = 0;    ///< ||W - fit||_F / ||W||_F
};

/// Fits `w` (m x n, finite, not all zero) to the shared-scale format with ratio `c`
/// (0 < c < 1), in double:
///   - start: s_out s_in^T = the top singular pair of |W| (the library's one-kernel SVID);
///   - codes: b1 = sign(W) (sign(0) = +1); the magnitude level, 1 + c or 1 - c, nearest to
///     |W_ij| / (s_out_i s_in_j) (b2 = b1 for 1 + c, -b1 for 1 - c);
///   - then `rounds` rounds of block coordinate descent on ||W - fit||_F: s_out in closed
///     form (least squares given s_in and the codes), s_in likewise given s_out, and the codes
///     re-picked. Every block is an exact minimisation, so the error never rises.
/// Throws `mbok::InvalidArgument` for an empty, non-finite or zero `w`, c outside (0, 1) or
/// rounds < 0.
SharedScaleFit fit_shared_scales(const Eigen::MatrixXf& w, double c, int rounds);

/// The fit as the library's two-kernel weights (kernel 2's output scale c s_out).
mbok::MultiKernelWeights<float> to_weights(const SharedScaleFit& fit, double c);

/// The reference without the constraint: K = 2 with free scales per kernel, fitted by the same
/// block coordinate descent so that the two formats differ only by the constraint. Starts
/// from the library's successive SVID (K = 2), then `rounds` rounds of: (s_out_1, s_out_2) of
/// each row by least squares (2 x 2 normal equations) given the s_in and the bits, the same
/// for (s_in_1, s_in_2) of each column, and the bits of each weight re-picked as the best of
/// the four +-s_1 +-s_2. Returns the weights and writes ||W - fit||_F / ||W||_F into `error`.
/// Throws what `mbok::svid` throws, or `mbok::InvalidArgument` for rounds < 0.
mbok::MultiKernelWeights<float> fit_free_k2(const Eigen::MatrixXf& w, int rounds, double& error);

/// Puts `layer`'s two kernels back on the format after an optimizer step: the nearest point
/// (Euclidean, over the scale vectors) of the constraint set s_in_1 = s_in_2,
/// s_out_2 = c s_out_1: s_in = (s_in_1 + s_in_2) / 2, s_out = (s_out_1 + c s_out_2) /
/// (1 + c^2). The bits are untouched. Throws `mbok::InvalidArgument` unless K = 2.
void project_shared_scales(mbok::BooleanLinear<float>& layer, double c);

}  // namespace tiny
