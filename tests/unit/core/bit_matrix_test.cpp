// The bit-layout contract, line by line, and the packed matrix and its views.
#include <mbok/bit_matrix.hpp>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "reference/naive.hpp"
#include "support.hpp"

using namespace mbok;
using mbok::test::random_matrix;

namespace {
const std::size_t kEdgeCols[] = {1, 63, 64, 65, 127, 511, 512, 513, 997};
const std::size_t kOddRows[] = {1, 3, 7, 65};

// A 64-byte-aligned buffer of words for building foreign views.
struct AlignedWords {
  explicit AlignedWords(std::size_t n)
      : p(static_cast<std::uint64_t*>(::operator new(n * 8 + 64, std::align_val_t(64)))) {
    std::fill(p, p + n + 8, 0ull);
  }
  ~AlignedWords() { ::operator delete(p, std::align_val_t(64)); }
  std::uint64_t* p;
};
}  // namespace

TEST_CASE("contract: bit 1 means -1, bit 0 means +1, sign(0) = +1", "[bit_matrix][contract]") {
  Eigen::MatrixXf m(1, 5);
  m << -1.0f, 1.0f, 0.0f, -0.0f, -1e-30f;
  const BitMatrix b = BitMatrix::pack(m);
  CHECK(b.bit(0, 0));
  CHECK_FALSE(b.bit(0, 1));
  CHECK_FALSE(b.bit(0, 2));
  CHECK_FALSE(b.bit(0, 3));  // -0 is zero: +1
  CHECK(b.bit(0, 4));
  CHECK(b.sign(0, 0) == -1);
  CHECK(b.sign(0, 2) == 1);
  CHECK(b.data()[0] == 0b10001ull);
}

TEST_CASE("contract: uint64 words, least significant bit first, rows row-major", "[bit_matrix][contract]") {
  for (std::size_t j : {0, 1, 63, 64, 100, 511, 512, 700}) {
    Eigen::MatrixXf m = Eigen::MatrixXf::Ones(3, 701);
    m(1, static_cast<Eigen::Index>(j)) = -1.0f;
    const BitMatrix b = BitMatrix::pack(m);
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t w = 0; w < b.row_words(); ++w) {
        const std::uint64_t expected = (i == 1 && w == j / 64) ? (1ull << (j % 64)) : 0ull;
        CHECK(b.data()[i * b.stride_words() + w] == expected);
      }
  }
}

TEST_CASE("contract: rows padded to 512 bits, 64-byte aligned buffers", "[bit_matrix][contract]") {
  for (std::size_t cols : kEdgeCols) {
    const BitMatrix b(3, cols);
    CHECK(b.stride_words() % kRowAlignWords == 0);
    CHECK(b.stride_words() * 64 >= cols);
    CHECK(b.stride_words() * 64 < cols + 512);
    CHECK(b.row_words() == padded_row_words(cols));
    CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
  }
  CHECK(padded_row_words(1) == 8);
  CHECK(padded_row_words(512) == 8);
  CHECK(padded_row_words(513) == 16);
}

TEST_CASE("contract: padding bits are zero after every operation", "[bit_matrix][contract]") {
  for (std::size_t cols : kEdgeCols) {
    BitMatrix b = BitMatrix::pack(-Eigen::MatrixXf::Ones(5, static_cast<Eigen::Index>(cols)));
    b.flip(4, cols - 1);
    b.set_bit(0, cols - 1, true);
    const BitMatrix t = b.transposed().transposed();
    for (const BitMatrix* m : {static_cast<const BitMatrix*>(&b), &t}) {
      // The checked view constructor verifies every padding bit.
      CHECK_NOTHROW(BitMatrixView(m->data(), m->rows(), m->cols(), m->stride_words()));
      CHECK(m->popcount() == 5 * cols - 1);
    }
    CHECK_THROWS_AS(b.flip(0, cols), std::out_of_range);
  }
}

TEST_CASE("contract: dot = n - 2 popcount(a xor b) with the true n", "[bit_matrix][contract]") {
  for (std::size_t cols : kEdgeCols) {
    const BitMatrix a = test::random_bits(2, cols);
    const BitMatrix b = test::random_bits(3, cols);
    const auto ref = test::naive_xnor_gemm(a, b);
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < 3; ++j) {
        std::int64_t ones = 0;
        for (std::size_t w = 0; w < a.row_words(); ++w)
          ones += detail::popcount64(a.view().row(i)[w] ^ b.view().row(j)[w]);
        CHECK(static_cast<std::int64_t>(cols) - 2 * ones == ref[i * 3 + j]);
      }
  }
}

TEST_CASE("pack and unpack round-trip at edge sizes", "[bit_matrix]") {
  for (std::size_t rows : kOddRows)
    for (std::size_t cols : kEdgeCols) {
      const Eigen::MatrixXf x = random_matrix(rows, cols);
      const BitMatrix b = BitMatrix::pack(x);
      const Eigen::MatrixXf s = b.to_signs();
      const Eigen::MatrixXf expected = (x.array() < 0).select(-Eigen::MatrixXf::Ones(x.rows(), x.cols()),
                                                                Eigen::MatrixXf::Ones(x.rows(), x.cols()));
      REQUIRE(s == expected);
      CHECK(BitMatrix::pack(s) == b);
      // Raw row-major pointer with a leading dimension larger than cols.
      Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> padded =
          Eigen::MatrixXf::Constant(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols + 3), 5.0f);
      padded.leftCols(static_cast<Eigen::Index>(cols)) = x;
      CHECK(BitMatrix::pack(padded.data(), rows, cols, cols + 3) == b);
      // Row-major Eigen input gives the same bits as column-major.
      const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x;
      CHECK(BitMatrix::pack(xr) == b);
    }
}

TEST_CASE("get, set, flip and popcount", "[bit_matrix]") {
  BitMatrix b(3, 130);
  CHECK(b.popcount() == 0);
  b.set_bit(2, 129, true);
  b.set_bit(0, 0, true);
  b.flip(1, 64);
  CHECK(b.popcount_row(0) == 1);
  CHECK(b.popcount_row(1) == 1);
  CHECK(b.popcount_row(2) == 1);
  b.flip(1, 64);
  b.set_bit(0, 0, false);
  CHECK(b.popcount() == 1);
  CHECK(b.sign(2, 129) == -1);
  CHECK_THROWS_AS(b.bit(3, 0), std::out_of_range);
  CHECK_THROWS_AS(b.set_bit(0, 130, true), std::out_of_range);
  CHECK_THROWS_AS(b.popcount_row(3), InvalidArgument);
}

TEST_CASE("transpose matches the element-wise transpose", "[bit_matrix]") {
  for (std::size_t rows : {1, 7, 64, 65, 130})
    for (std::size_t cols : {1, 63, 64, 65, 513}) {
      const Eigen::MatrixXf x = random_matrix(rows, cols);
      const BitMatrix b = BitMatrix::pack(x);
      const BitMatrix t = b.transposed();
      REQUIRE(t.rows() == cols);
      REQUIRE(t.cols() == rows);
      CHECK(t.to_signs() == b.to_signs().transpose());
      CHECK(t.transposed() == b);
    }
}

TEST_CASE("equality compares shape and elements, not strides", "[bit_matrix]") {
  const BitMatrix a = test::random_bits(5, 100);
  BitMatrix b = a;
  CHECK(a == b);
  b.flip(4, 99);
  CHECK(a != b);
  CHECK(BitMatrix(5, 100) != BitMatrix(5, 101));
  // A view with a wider stride over the same elements is equal.
  AlignedWords buf(5 * 16);
  for (std::size_t i = 0; i < 5; ++i)
    std::copy(a.view().row(i), a.view().row(i) + 8, buf.p + i * 16);
  CHECK(BitMatrixView(buf.p, 5, 100, 16) == a.view());
}

TEST_CASE("views over foreign memory: accepted when they meet the contract", "[bit_matrix][view]") {
  AlignedWords buf(4 * 16);
  buf.p[0] = 0b101;
  buf.p[16 + 1] = 1ull << 3;  // row 1, column 67
  const BitMatrixView v(buf.p, 4, 600, 16, "weights");
  CHECK(v.bit(0, 0));
  CHECK(v.bit(0, 2));
  CHECK(v.bit(1, 67));
  CHECK(v.popcount() == 3);
  MutableBitMatrixView mv(buf.p, 4, 600, 16);
  mv.flip(3, 599);
  CHECK(v.bit(3, 599));
  const BitMatrixView rows12 = v.middle_rows(1, 2);
  CHECK(rows12.rows() == 2);
  CHECK(rows12.bit(0, 67));
  CHECK_THROWS_AS(v.middle_rows(3, 2), InvalidArgument);
  // Stride with extra words between rows: the gap is not part of the contract.
  AlignedWords gap(2 * 16);
  gap.p[15] = ~0ull;
  CHECK_NOTHROW(BitMatrixView(gap.p, 2, 100, 16));
}

TEST_CASE("views over foreign memory: rejected with a message naming the rule", "[bit_matrix][view]") {
  AlignedWords buf(4 * 16);
  auto message_of = [](auto&& make) {
    try {
      make();
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK_THAT(message_of([&] { BitMatrixView(buf.p + 1, 2, 100, 8, "w0"); }), test::contains("w0") && test::contains("aligned"));
  CHECK_THAT(message_of([&] { BitMatrixView(buf.p, 2, 100, 12); }), test::contains("multiple of 8"));
  CHECK_THAT(message_of([&] { BitMatrixView(buf.p, 2, 600, 8); }), test::contains("shorter than a padded row"));
  buf.p[16 + 1] = 1ull << 40;  // row 1, column 104 >= 100
  CHECK_THAT(message_of([&] { BitMatrixView(buf.p, 2, 100, 16); }),
             test::contains("padding bit set in row 1 at column 104"));
  buf.p[16 + 1] = 0;
  buf.p[7] = 1;  // row 0, word 7: inside the padded row, past the columns
  CHECK_THAT(message_of([&] { BitMatrixView(buf.p, 2, 100, 16); }), test::contains("column 448"));
  CHECK_THROWS_AS(BitMatrixView(nullptr, 2, 100, 8), InvalidArgument);
}

TEST_CASE("borrowed matrices are zero-copy and copied on first write", "[bit_matrix][view]") {
  auto owner = std::make_shared<BitMatrix>(test::random_bits(3, 70));
  const std::uint64_t* original = owner->data();
  BitMatrix b = BitMatrix::borrow(owner->view(), owner);
  CHECK(b.is_borrowed());
  CHECK(b.data() == original);
  BitMatrix copy = b;  // copies of a borrowed matrix share the borrowed memory
  CHECK(copy.data() == original);
  const bool before = owner->bit(2, 69);
  b.flip(2, 69);
  CHECK_FALSE(b.is_borrowed());
  CHECK(b.data() != original);
  CHECK(owner->bit(2, 69) == before);
  CHECK(b.bit(2, 69) != before);
}

TEST_CASE("bad shapes and values raise clear errors", "[bit_matrix][errors]") {
  CHECK_THROWS_AS(BitMatrix(0, 5), InvalidArgument);
  CHECK_THROWS_AS(BitMatrix(5, 0), InvalidArgument);
  CHECK_THROWS_AS(BitMatrix(static_cast<std::size_t>(-1), 5), InvalidArgument);
  Eigen::MatrixXf x = Eigen::MatrixXf::Ones(2, 3);
  x(1, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(BitMatrix::pack(x, "layer.w"), test::contains("layer.w") &&
                                                       test::contains("NaN at (1, 2)"));
  float data[4] = {1, 2, 3, 4};
  CHECK_THROWS_AS(BitMatrix::pack(data, 2, 2, 1), InvalidArgument);
  CHECK_THROWS_AS(BitMatrix::pack(static_cast<const float*>(nullptr), 2, 2, 2), InvalidArgument);
  // Infinities have a sign: they pack.
  x(1, 2) = -std::numeric_limits<float>::infinity();
  CHECK(BitMatrix::pack(x).bit(1, 2));
}
