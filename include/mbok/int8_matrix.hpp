#pragma once
/// \file
/// `Int8Matrix`: a dense matrix stored as int8 values with one float scale per row,
/// W(j, l) ~= scale(j) q(j, l), q in [-127, 127] (symmetric, round to nearest). One byte per
/// weight: the compact form of a dense layer that stays dense in a Boolean model, such as the
/// output head, whose float copy would otherwise be the largest read of a decode step.
/// `ProductSet::dense_i8_gemm` multiplies it with float activations.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "parallel.hpp"

#include "detail/base/checked.hpp"

namespace mbok {

/// See the file comment. A value type (copyable, movable); rows are `stride()` bytes apart.
class Int8Matrix {
 public:
  Int8Matrix() = default;

  /// Quantizes `rows` x `cols` floats (rows `ldw` apart): per row, scale = max |w| / 127 and
  /// q = round(w / scale), so |w - scale q| <= scale / 2 for every entry (a zero row has scale
  /// 0). Throws `InvalidArgument` for a null pointer with a non-empty shape, `ldw < cols`, or a
  /// NaN or infinite weight (naming its row and column).
  static Int8Matrix quantize(const float* w, std::size_t rows, std::size_t cols, std::size_t ldw) {
    detail::require(ldw >= cols, "Int8Matrix: row stride ", ldw, " is below ", cols, " columns");
    detail::require(w != nullptr || rows * cols == 0, "Int8Matrix: null weights");
    Int8Matrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.values_.resize(detail::mul_or_throw({rows, cols}, "Int8Matrix: ", rows, " x ", cols));
    m.scales_.resize(rows);
    // Rows are independent: a model's head (32000 x 4096) splits across threads.
    parallel_for(0, rows, 64, [&](std::size_t j0, std::size_t j1) {
      for (std::size_t j = j0; j < j1; ++j) {
        const float* row = w + j * ldw;
        float peak = 0.0f;
        bool finite = true;
        for (std::size_t l = 0; l < cols; ++l) {
          finite &= std::isfinite(row[l]);
          peak = std::max(peak, std::fabs(row[l]));
        }
        if (!finite)
          for (std::size_t l = 0; l < cols; ++l)
            detail::require(std::isfinite(row[l]), "Int8Matrix: weight (", j, ", ", l,
                            ") is not finite");
        const float scale = peak / 127.0f;
        m.scales_[j] = scale;
        std::int8_t* q = m.values_.data() + j * cols;
        if (scale == 0.0f) {
          std::fill(q, q + cols, std::int8_t{0});
          continue;
        }
        // Round half away from zero (std::lround's rule) without a library call per value: in
        // double, v +- 0.5 is exact for |v| <= 127, so truncating it rounds exactly like lround.
        for (std::size_t l = 0; l < cols; ++l) {
          const double v = std::min(127.0f, std::max(-127.0f, row[l] / scale));
          q[l] = static_cast<std::int8_t>(std::trunc(v + (v < 0 ? -0.5 : 0.5)));
        }
      }
    });
    return m;
  }

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  /// Bytes between consecutive rows of `data()`.
  std::size_t stride() const noexcept { return cols_; }
  const std::int8_t* data() const noexcept { return values_.data(); }
  /// One scale per row.
  const float* scales() const noexcept { return scales_.data(); }
  /// Bytes held: the values and the scales.
  std::size_t bytes() const noexcept { return values_.size() + scales_.size() * sizeof(float); }

  /// Rows [r0, r1) as floats, scale(j) q(j, l), into `out` (rows `ldo` apart).
  void dequantize_rows(std::size_t r0, std::size_t r1, float* out, std::size_t ldo) const {
    detail::require(r0 <= r1 && r1 <= rows_, "Int8Matrix: rows [", r0, ", ", r1,
                    ") out of range for ", rows_, " rows");
    detail::require(ldo >= cols_, "Int8Matrix: output stride ", ldo, " is below ", cols_);
    for (std::size_t j = r0; j < r1; ++j) {
      const std::int8_t* q = values_.data() + j * cols_;
      float* o = out + (j - r0) * ldo;
      for (std::size_t l = 0; l < cols_; ++l) o[l] = scales_[j] * static_cast<float>(q[l]);
    }
  }

 private:
  std::size_t rows_ = 0, cols_ = 0;
  std::vector<std::int8_t> values_;
  std::vector<float> scales_;
};

}  // namespace mbok
