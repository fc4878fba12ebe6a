// The embedding table borrowed from a file: every float dtype converts row by row to the
// values a float copy holds, and a bad tensor is refused naming it.
#include <mbok/llama/embedding.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "catch.hpp"
#include "llama_support.hpp"

using mbok::DType;
using mbok::llama::EmbeddingTable;

namespace {

mbok::TensorView view_of(const mbok::Tensor& t, const char* name) {
  mbok::TensorView v;
  v.name = name;
  v.dtype = t.dtype;
  v.shape = t.shape;
  v.data = t.bytes.data();
  v.size_bytes = t.bytes.size();
  return v;
}

}  // namespace

TEST_CASE("a borrowed embedding table reads the rows a float copy holds", "[llama][embedding]") {
  const std::int64_t vocab = 7, hidden = 5;
  std::vector<float> values;
  for (std::int64_t i = 0; i < vocab * hidden; ++i) values.push_back(0.37f * float(i % 11) - 1.5f);
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    const auto tensor =
        std::make_shared<mbok::Tensor>(mbok::test::make_tensor(dtype, {vocab, hidden}, values));
    const mbok::TensorView view = view_of(*tensor, "embed");
    const EmbeddingTable borrowed = EmbeddingTable::borrow(view, tensor);
    const EmbeddingTable owned(view.to_matrix());
    CHECK(borrowed.is_borrowed());
    CHECK_FALSE(owned.is_borrowed());
    CHECK(borrowed.owned_bytes() == 0);
    CHECK(owned.owned_bytes() == std::size_t(vocab * hidden) * sizeof(float));
    CHECK(borrowed.matrix() == owned.floats());
    std::vector<float> a(hidden), b(hidden);
    for (std::int64_t token = 0; token < vocab; ++token) {
      borrowed.row(token, a.data());
      owned.row(token, b.data());
      CHECK(a == b);
    }
    CHECK_THROWS_WITH(borrowed.floats(), Catch::Contains("borrowed"));
  }
  // A value that is not finite, and a tensor that is not a matrix, are refused.
  values[12] = std::numeric_limits<float>::infinity();
  const auto bad =
      std::make_shared<mbok::Tensor>(mbok::test::make_tensor(DType::f32, {vocab, hidden}, values));
  CHECK_THROWS_WITH(EmbeddingTable::borrow(view_of(*bad, "embed"), bad),
                    Catch::Contains("'embed' row 2 is not finite"));
  mbok::TensorView flat = view_of(*bad, "flat");
  flat.shape = {vocab * hidden};
  CHECK_THROWS_WITH(EmbeddingTable::borrow(flat, bad), Catch::Contains("'flat' has shape"));
}
