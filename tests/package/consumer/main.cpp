// Uses the public API the way an inference engine would, with nothing but mbok::mbok.
#include <mbok/mbok.hpp>

#include <cstdio>
#include <vector>

int main() {
  const Eigen::MatrixXf w = Eigen::MatrixXf::Random(33, 70);
  const mbok::BitMatrix bits = mbok::BitMatrix::pack(w);
  const mbok::ProductSet kernels;
  std::vector<float> x(70, 1.0f), y(33);
  kernels.sign_gemm(x.data(), 70, 1, bits, y.data(), 33);
  // With x = 1, y_j = (+1 count) - (-1 count) of row j.
  for (int j = 0; j < 33; ++j) {
    const int expected = 70 - 2 * static_cast<int>(bits.popcount_row(static_cast<std::size_t>(j)));
    if (static_cast<int>(y[static_cast<std::size_t>(j)]) != expected) {
      std::printf("row %d: %f != %d\n", j, static_cast<double>(y[static_cast<std::size_t>(j)]),
                  expected);
      return 1;
    }
  }
  std::printf("mbok %s ok on %s\n", mbok::version(), mbok::isa_name(kernels.isa()));
  return 0;
}
