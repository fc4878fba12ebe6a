// The inference form of a layer (PackedLinear) against the layer it was packed from, on every
// ISA available here: the repacking is a bijection (unpack gives the bits back for both
// layouts and every edge shape), the int8 forward equals BooleanLinear's table-lookup forward
// bit for bit, the float forward equals BooleanLinear's within float rounding, and packed
// bytes taken from elsewhere are borrowed (same layout, aligned), repacked (other layout or
// misaligned) or refused (a padding bit set).
#include <mbok/packed_linear.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "support.hpp"

using namespace mbok;

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<std::uint8_t> packed_bytes(const BitMatrix& bits, LutLayout layout) {
  std::vector<std::uint8_t> out(detail::lut_tiles(bits.rows()) * 2 *
                                detail::lut_cols32(bits.cols()));
  detail::lut_pack(bits.view(), layout, out.data());
  return out;
}

const std::size_t kShapes[][2] = {{1, 1},   {15, 3},  {16, 4},  {17, 31},
                                  {33, 32}, {40, 33}, {5, 100}, {18, 513}};

}  // namespace

TEST_CASE("packed kernels unpack to the bits they were packed from", "[packed]") {
  for (const auto& s : kShapes)
    for (LutLayout layout : {LutLayout::interleave4, LutLayout::lanes16}) {
      INFO("m = " << s[0] << ", n = " << s[1] << ", layout " << lut_layout_name(layout));
      const BitMatrix bits = test::random_bits(s[0], s[1]);
      const std::vector<std::uint8_t> packed = packed_bytes(bits, layout);
      const detail::LutWeightsView view{packed.data(), layout, s[0], s[1]};
      BitMatrix back(s[0], s[1]);
      detail::lut_unpack(view, 0, back.mutable_view());
      REQUIRE(back == bits);
      // A block of rows from the middle.
      if (s[0] > 3) {
        BitMatrix part(s[0] - 3, s[1]);
        detail::lut_unpack(view, 2, part.mutable_view());
        for (std::size_t i = 0; i + 3 < s[0]; ++i)
          for (std::size_t j = 0; j < s[1]; ++j) REQUIRE(part.bit(i, j) == bits.bit(i + 2, j));
      }
      REQUIRE(detail::lut_padding_row(view) == std::numeric_limits<std::size_t>::max());
    }
}

TEST_CASE("a padding bit in packed kernels is found and refused", "[packed]") {
  const ProductSet ks;
  for (LutLayout layout : {LutLayout::interleave4, LutLayout::lanes16}) {
    const std::size_t m = 17, n = 33;  // padding rows 17..31, padding columns 33..63
    const BitMatrix bits = test::random_bits(m, n);
    // A set bit in a padding row, then in a padding column of a real row.
    const std::pair<std::size_t, std::size_t> spots[] = {{20, 5}, {3, 35}};
    for (const auto& [row, col] : spots) {
      std::vector<std::uint8_t> packed = packed_bytes(bits, layout);
      const detail::LutNibble at = detail::lut_nibble(layout, row % 16, col / 4 * 4);
      packed[(row / 16) * 2 * detail::lut_cols32(n) + at.byte] |=
          static_cast<std::uint8_t>(1u << (at.shift + col % 4));
      const detail::LutWeightsView view{packed.data(), layout, m, n};
      REQUIRE(detail::lut_padding_row(view) == row);
      REQUIRE_THROWS_WITH(ks.adopt_lut(packed.data(), layout, m, n, nullptr, "layer 'x'"),
                          Catch::Contains("layer 'x'") && Catch::Contains("padding bit"));
    }
  }
}

TEST_CASE("packed bytes are borrowed in the ISA's layout and repacked otherwise", "[packed]") {
  test::for_each_isa([](Isa) {
    const ProductSet ks;
    const std::size_t m = 40, n = 70;
    const BitMatrix bits = test::random_bits(m, n);
    for (LutLayout layout : {LutLayout::interleave4, LutLayout::lanes16}) {
      const std::vector<std::uint8_t> bytes = packed_bytes(bits, layout);
      // 64-byte aligned storage, kept alive by the owner.
      auto owner = std::shared_ptr<std::uint8_t>(
          static_cast<std::uint8_t*>(::operator new(bytes.size() + 64, std::align_val_t(64))),
          [](std::uint8_t* p) { ::operator delete(p, std::align_val_t(64)); });
      std::memcpy(owner.get(), bytes.data(), bytes.size());
      const Int8LutWeights adopted = ks.adopt_lut(owner.get(), layout, m, n, owner);
      REQUIRE(adopted.is_borrowed() == (layout == ks.lut_layout()));
      REQUIRE(adopted.layout() == ks.lut_layout());
      REQUIRE(adopted.unpack() == bits);
      // Misaligned bytes are copied.
      std::memmove(owner.get() + 1, owner.get(), bytes.size());
      const Int8LutWeights copied = ks.adopt_lut(owner.get() + 1, layout, m, n, owner);
      REQUIRE_FALSE(copied.is_borrowed());
      REQUIRE(copied.unpack() == bits);
    }
  });
}

TEST_CASE("PackedLinear runs as the layer it was packed from", "[packed]") {
  const std::size_t shapes[][3] = {{1, 1, 1}, {17, 33, 2}, {64, 100, 3}, {130, 256, 2}};
  for (const auto& s : shapes)
    test::for_each_isa([&](Isa) {
      const std::size_t m = s[0], n = s[1], k_count = s[2];
      INFO("m = " << m << ", n = " << n << ", K = " << k_count);
      const Eigen::VectorXf bias = test::random_matrix(m, 1);
      const BooleanLinear<float> layer(test::random_kernel_weights(m, n, k_count), bias);
      const PackedLinear packed(layer);
      REQUIRE(packed.bytes() < k_count * (m + 16) * (n + 32) / 4 + k_count * (m + n) * 4 + m * 4);
      // t = 1 and 5 run the float table lookup, 40 and 600 the unpacked sign products.
      for (std::size_t t :
           {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{40}, std::size_t{600}}) {
        INFO("t = " << t);
        const RowMatrix x = test::random_matrix(t, n + 2);
        const std::size_t ldx = n + 2, ldy = m + 3;
        // int8: the table lookup of the layer, bit for bit.
        std::vector<float> want(t * ldy, 7.0f), got(t * ldy, 7.0f);
        Int8ForwardWorkspace ws;
        multi_kernel_forward_int8(layer.weights(), Int8PreparedWeights(layer.weights()), x.data(),
                                  ldx, t, want.data(), ldy, Int8Algorithm::lut);
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t j = 0; j < m; ++j)
            want[i * ldy + j] += bias[static_cast<Eigen::Index>(j)];
        packed.forward_int8(x.data(), ldx, t, got.data(), ldy, ws);
        REQUIRE(got == want);
        // float: the layer's forward within rounding, both summing n + K terms in float:
        // |difference| <= 2 gamma(n + K + 3) sum_k |s_out_kj| sum_l |x_il s_in_kl| + |bias|
        // eps, with gamma(q) ~ q 2^-24 (forward_float.hpp states the table lookup's bound).
        if (t == 0) continue;
        const RowMatrix xf = x.leftCols(static_cast<Eigen::Index>(n));
        const RowMatrix yf = layer.forward(xf);
        std::vector<float> yp(t * ldy, 7.0f);
        packed.forward(x.data(), ldx, t, yp.data(), ldy);
        const double gamma = 2.0 * static_cast<double>(n + k_count + 3) * std::ldexp(1.0, -24);
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t j = 0; j < m; ++j) {
            const auto ii = static_cast<Eigen::Index>(i), jj = static_cast<Eigen::Index>(j);
            double mass = 0;
            for (std::size_t k = 0; k < k_count; ++k)
              mass += std::abs(layer.s_out(k)[jj]) *
                      (xf.row(ii).cwiseProduct(layer.s_in(k).transpose())).cwiseAbs().sum();
            const double bound = 2 * gamma * mass + 2 * std::abs(bias[jj]) * std::ldexp(1.0, -24);
            REQUIRE(std::abs(double(yp[i * ldy + j]) - double(yf(ii, jj))) <= bound);
          }
      }
      // Unpacked, it is the layer again.
      const BooleanLinear<float> back = packed.unpack();
      REQUIRE(back.num_kernels() == k_count);
      for (std::size_t k = 0; k < k_count; ++k) {
        REQUIRE(back.kernel(k) == layer.kernel(k));
        REQUIRE(back.s_out(k) == layer.s_out(k));
        REQUIRE(back.s_in(k) == layer.s_in(k));
      }
      REQUIRE(back.bias() == layer.bias());
    });
}

TEST_CASE("PackedLinear refuses bad operands with a clear error", "[packed]") {
  const MultiKernelWeights<float> w = test::random_kernel_weights(20, 30, 2);
  const PackedLinear packed(w);
  std::vector<float> x(30, 1.0f), y(20);
  Int8ForwardWorkspace ws;
  x[7] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(packed.forward_int8(x.data(), 30, 1, y.data(), 20, ws),
                      Catch::Contains("finite"));
  x[7] = 1.0f;
  REQUIRE_THROWS_WITH(packed.forward_int8(x.data(), 29, 1, y.data(), 20, ws),
                      Catch::Contains("ldx 29"));
  REQUIRE_THROWS_WITH(packed.forward(x.data(), 30, 1, y.data(), 19), Catch::Contains("strides"));
  REQUIRE_THROWS_WITH(PackedLinear(w, Eigen::VectorXf::Ones(3)), Catch::Contains("bias has 3"));
  std::vector<Eigen::VectorXf> s_out = {w.s_out(0)}, s_in = {w.s_in(0)};
  REQUIRE_THROWS_WITH(PackedLinear(Int8PreparedWeights(w), s_out, s_in),
                      Catch::Contains("2 kernels but 1"));
  s_out.push_back(w.s_out(1));
  s_in.push_back(w.s_in(1));
  s_in[1][4] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(PackedLinear(Int8PreparedWeights(w), s_out, s_in),
                      Catch::Contains("kernel 1 has a non-finite scale"));
}
