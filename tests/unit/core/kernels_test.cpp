// Every product on every ISA available here, against the naive references in tests/reference.
// Integer results must match bit for bit. Float results are compared with the bound derived
// in tests/float_bounds.hpp from how the kernels sum: gamma(3n - 2) sum_l |x_l| for n terms.
#include <mbok/products.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "float_bounds.hpp"
#include "reference/naive.hpp"
#include "support.hpp"

using namespace mbok;

namespace {
const std::size_t kCols[] = {1, 63, 64, 65, 127, 128, 511, 512, 513, 997};
const std::size_t kRowsSmall[] = {1, 3, 8, 17};

double tolerance(const float* x, std::size_t n) {
  double abs_sum = 0;
  for (std::size_t l = 0; l < n; ++l) abs_sum += std::fabs(x[l]);
  return test::product_bound(abs_sum, n);
}

std::vector<std::int8_t> padded_int8(std::size_t t, std::size_t n, std::size_t ld, int lo, int hi) {
  std::vector<std::int8_t> x(t * ld + 64, 0);
  std::uniform_int_distribution<int> dist(lo, hi);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t l = 0; l < n; ++l) x[i * ld + l] = static_cast<std::int8_t>(dist(test::rng()));
  return x;
}

// A 64-byte-aligned copy of `v` (int8 activations must be aligned).
struct AlignedBytes {
  explicit AlignedBytes(const std::vector<std::int8_t>& v)
      : p(static_cast<std::int8_t*>(::operator new(v.size(), std::align_val_t(64)))) {
    std::copy(v.begin(), v.end(), p);
  }
  ~AlignedBytes() { ::operator delete(p, std::align_val_t(64)); }
  std::int8_t* p;
};
}  // namespace

TEST_CASE("xnor_gemm equals the naive reference bit for bit", "[kernels][xnor]") {
  test::for_each_isa([](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    for (std::size_t n : kCols)
      for (std::size_t t : kRowsSmall) {
        const BitMatrix a = test::random_bits(t, n);
        const BitMatrix b = test::random_bits(t + 4, n);
        const auto ref = test::naive_xnor_gemm(a, b);
        std::vector<std::int32_t> c(t * b.rows(), -7);
        k.xnor_gemm(a, b, c.data(), b.rows());
        INFO("n = " << n << ", t = " << t);
        REQUIRE(c == ref);
      }
  });
}

TEST_CASE("sign_gemm (float) matches the reference within the summation bound", "[kernels][f32]") {
  test::for_each_isa([](Isa) {
    const ProductSet k;
    for (std::size_t n : kCols)
      for (std::size_t t : kRowsSmall) {
        const std::size_t m = t + 5;
        const BitMatrix w = test::random_bits(m, n);
        const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> x =
            test::random_matrix(t, n + 3);  // stride n + 3
        std::vector<float> y(t * m);
        k.sign_gemm(x.data(), n + 3, t, w, y.data(), m);
        const auto ref = test::naive_sign_gemm(x.data(), n + 3, t, w);
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t j = 0; j < m; ++j)
            REQUIRE(std::fabs(y[i * m + j] - ref[i * m + j]) <=
                    tolerance(x.data() + i * (n + 3), n));
      }
  });
}

TEST_CASE("sign_gemm_transposed (float) matches the reference", "[kernels][f32]") {
  test::for_each_isa([](Isa) {
    const ProductSet k;
    for (std::size_t n : kCols)
      for (std::size_t t : kRowsSmall) {
        const std::size_t m = t + 6;
        const BitMatrix w = test::random_bits(m, n);
        const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> z =
            test::random_matrix(t, m);
        std::vector<float> dx(t * (n + 1), 123.0f);
        k.sign_gemm_transposed(z.data(), m, t, w, dx.data(), n + 1);
        const auto ref = test::naive_sign_gemm_transposed(z.data(), m, t, w);
        for (std::size_t i = 0; i < t; ++i) {
          for (std::size_t l = 0; l < n; ++l)
            REQUIRE(std::fabs(dx[i * (n + 1) + l] - ref[i * n + l]) <=
                    tolerance(z.data() + i * m, m));
          REQUIRE(dx[i * (n + 1) + n] == 123.0f);  // the stride gap is not written
        }
      }
  });
}

TEST_CASE("sign_gemm_i8 equals the reference bit for bit, extremes included", "[kernels][int8]") {
  test::for_each_isa([](Isa) {
    const ProductSet k;
    for (std::size_t n : kCols)
      for (std::size_t t : kRowsSmall)
        for (int extreme : {0, 1}) {
          const std::size_t m = t + 2;
          const BitMatrix w =
              extreme ? BitMatrix::pack(-Eigen::MatrixXf::Ones(m, n)) : test::random_bits(m, n);
          const std::size_t ld = w.row_words() * 64;
          const auto xv =
              extreme ? padded_int8(t, n, ld, -128, -127) : padded_int8(t, n, ld, -128, 127);
          AlignedBytes x(xv);
          std::vector<std::int32_t> y(t * m);
          k.sign_gemm_i8(x.p, ld, t, w, y.data(), m);
          const auto ref = test::naive_sign_gemm(x.p, ld, t, w);
          for (std::size_t i = 0; i < t * m; ++i)
            REQUIRE(y[i] == static_cast<std::int32_t>(ref[i]));
        }
  });
}

TEST_CASE("row-range entry points compute only their range", "[kernels]") {
  const BitMatrix a = test::random_bits(3, 200);
  const BitMatrix b = test::random_bits(10, 200);
  const auto ref = test::naive_xnor_gemm(a, b);
  test::for_each_isa([&](Isa) {
    const ProductSet k;
    std::vector<std::int32_t> c(30, -1);
    k.xnor_gemm_range(a, b, c.data(), 10, 2, 5);
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 10; ++j)
        CHECK(c[i * 10 + j] == ((j >= 2 && j < 5) ? ref[i * 10 + j] : -1));
    CHECK_THROWS_AS(k.xnor_gemm_range(a, b, c.data(), 10, 5, 11), InvalidArgument);
  });
}

namespace {

// One row per ProductTable entry. A product entry names the x86 tiers that implement it
// (`simd`): there the ISA's table must hold a function of its own, elsewhere the scalar one.
// A value entry (a tuning constant) is listed so that the layout check below sees every
// member, but not compared. New entries get a row here.
struct TableEntry {
  const char* name;
  std::size_t bytes;
  bool (*same)(const detail::ProductTable&, const detail::ProductTable&);  // null for values
  std::vector<Isa> simd;
};
template <auto Member>
TableEntry product(const char* name, std::vector<Isa> simd) {
  return {name, sizeof(std::declval<const detail::ProductTable&>().*Member),
          [](const detail::ProductTable& a, const detail::ProductTable& b) {
            return a.*Member == b.*Member;
          },
          std::move(simd)};
}
// One codec's entry of the optimizer's step (an array member: compared element by element).
TableEntry step_entry(detail::StepCodec codec, const char* name, std::vector<Isa> simd) {
  static const detail::StepCodec codecs[] = {detail::StepCodec::f32, detail::StepCodec::f16,
                                             detail::StepCodec::i8};
  using Compare = bool (*)(const detail::ProductTable&, const detail::ProductTable&);
  static const Compare compare[] = {
      [](const detail::ProductTable& a, const detail::ProductTable& b) {
        return a.boolean_step_rows[0] == b.boolean_step_rows[0];
      },
      [](const detail::ProductTable& a, const detail::ProductTable& b) {
        return a.boolean_step_rows[1] == b.boolean_step_rows[1];
      },
      [](const detail::ProductTable& a, const detail::ProductTable& b) {
        return a.boolean_step_rows[2] == b.boolean_step_rows[2];
      }};
  const auto i = static_cast<std::size_t>(codec);
  CHECK(codecs[i] == codec);
  return {name, sizeof(std::declval<const detail::ProductTable&>().boolean_step_rows[0]),
          compare[i], std::move(simd)};
}
template <auto Member>
TableEntry value(const char* name) {
  return {name, sizeof(std::declval<const detail::ProductTable&>().*Member), nullptr, {}};
}
const std::vector<TableEntry>& table_entries() {
  using T = detail::ProductTable;
  const std::vector<Isa> x86 = {Isa::avx2, Isa::avx512};
  static const std::vector<TableEntry> entries = {
      product<&T::xnor_gemm>("xnor_gemm", x86),
      product<&T::sign_gemm_f32>("sign_gemm_f32", x86),
      product<&T::sign_gemm_t_f32>("sign_gemm_t_f32", x86),
      product<&T::sign_gemm_i8>("sign_gemm_i8", x86),
      product<&T::sign_gemm_acc_f32>("sign_gemm_acc_f32", x86),
      product<&T::lut_layout>("lut_layout", x86),
      product<&T::lut_tables_i8>("lut_tables_i8", x86),
      product<&T::sign_gemm_i8_lut>("sign_gemm_i8_lut", x86),
      product<&T::dense_i8_f32>("dense_i8_f32", x86),
      product<&T::sign_gemm_i8_lut_prefill>("sign_gemm_i8_lut_prefill", x86),
      value<&T::lut_prefill_min_tokens>("lut_prefill_min_tokens"),
      value<&T::lut_max_tokens>("lut_max_tokens"),
      product<&T::lut_tables_f32>("lut_tables_f32", x86),
      product<&T::sign_gemm_f32_lut>("sign_gemm_f32_lut", x86),
      value<&T::lut_f32_max_tokens>("lut_f32_max_tokens"),
      product<&T::gemm_tn_f32>("gemm_tn_f32", x86),
      product<&T::weight_forward_f32>("weight_forward_f32", x86),
      product<&T::weight_backward_dx_f32>("weight_backward_dx_f32", x86),
      value<&T::weight_product_min_work>("weight_product_min_work"),
      product<&T::signal_rows>("signal_rows", x86),
      step_entry(detail::StepCodec::f32, "boolean_step_rows f32", x86),
      // The avx2 tier has no F16C: f16 accumulators keep the scalar step there.
      step_entry(detail::StepCodec::f16, "boolean_step_rows f16", {Isa::avx512}),
      step_entry(detail::StepCodec::i8, "boolean_step_rows i8", x86),
      product<&T::max_abs_bits>("max_abs_bits", {Isa::avx512}),
      product<&T::abs_max_bits_f32>("abs_max_bits_f32", x86),
      product<&T::quantize_codes_f32>("quantize_codes_f32", x86),
  };
  return entries;
}
}  // namespace

// The kernel tests check which ISA ran through the table's label only; a product file whose
// install_* call is missing would leave the scalar function in the table and test it twice.
// Tables are compared, not run, so this holds for every compiled ISA, whatever the CPU.
TEST_CASE("x86 tables hold the ISA's own function for every product it implements",
          "[kernels][table]") {
  // The list covers the whole table: the label, then the listed members back to back.
  std::size_t listed = 0;
  for (const TableEntry& e : table_entries()) listed += e.bytes;
  INFO("ProductTable holds " << sizeof(detail::ProductTable) -
                                    offsetof(detail::ProductTable, xnor_gemm)
                             << " bytes of entries; table_entries() lists " << listed
                             << ": add the new entries to table_entries()");
  CHECK(offsetof(detail::ProductTable, xnor_gemm) + listed == sizeof(detail::ProductTable));
  const detail::ProductTable& scalar = detail::product_table(Isa::scalar);
  CHECK(scalar.isa == Isa::scalar);
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    if (!isa_compiled(isa)) continue;
    const detail::ProductTable& table = detail::product_table(isa);
    CHECK(table.isa == isa);
    for (const TableEntry& e : table_entries()) {
      if (e.same == nullptr) continue;
      const bool implemented = std::find(e.simd.begin(), e.simd.end(), isa) != e.simd.end();
      INFO("ISA " << isa_name(isa) << ", entry " << e.name);
      CHECK(e.same(table, scalar) == !implemented);
    }
  }
#if !MBOK_HAS_X86_KERNELS
  WARN("no x86 kernels in this build: x86 tables not compared");
#endif
}

TEST_CASE("kernel shape errors name the operand", "[kernels][errors]") {
  const ProductSet k;
  const BitMatrix a = test::random_bits(2, 100);
  const BitMatrix b = test::random_bits(3, 101);
  std::vector<std::int32_t> c(6);
  CHECK_THROWS_WITH(k.xnor_gemm(a, b, c.data(), 3),
                    test::contains("activations have 100 columns, weights 101"));
  std::vector<float> x(200), y(6);
  CHECK_THROWS_WITH(k.sign_gemm(x.data(), 50, 2, b, y.data(), 3),
                    test::contains("ldx 50 < input features 101"));
  CHECK_THROWS_WITH(k.sign_gemm(x.data(), 101, 2, b, y.data(), 2),
                    test::contains("ldy 2 < output features 3"));
}
