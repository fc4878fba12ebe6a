// StateDict helpers (sub_dict, add_prefixed) and accumulator names parsed from strings.

#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/state_dict.hpp>
#include <mbok/svid.hpp>

#include "../../support.hpp"

namespace mbok::test {
namespace {

TEST_CASE("sub_dict keeps the tensors under a prefix, renamed without it", "[state]") {
  StateDict dict;
  dict["a.x"] = Tensor::scalar(1.0f);
  dict["a.y"] = Tensor::scalar(2.0f);
  dict["ab.z"] = Tensor::scalar(3.0f);  // shares the characters but not the prefix "a."
  dict["b.x"] = Tensor::scalar(4.0f);
  const StateDict a = sub_dict(dict, "a.");
  REQUIRE(a.size() == 2);
  CHECK(read_scalar<float>(a, "x") == 1.0f);
  CHECK(read_scalar<float>(a, "y") == 2.0f);
  CHECK(sub_dict(dict, "c.").empty());
  CHECK(sub_dict(dict, "").size() == dict.size());
}

TEST_CASE("add_prefixed is the inverse of sub_dict and round-trips a layer", "[state]") {
  const BooleanLinear<float> layer(svid<float>(Eigen::MatrixXf(random_matrix(6, 70)), 2).weights);
  StateDict part;
  layer.export_state(part);
  StateDict model;
  model["other"] = Tensor::scalar(std::int64_t{7});
  add_prefixed(model, part, "layers.0.");
  CHECK(model.size() == part.size() + 1);
  const StateDict back = sub_dict(model, "layers.0.");
  REQUIRE(back.size() == part.size());
  for (const auto& [name, t] : part) {
    REQUIRE(back.count(name) == 1);
    const Tensor& u = back.at(name);
    CHECK((u.dtype == t.dtype && u.shape == t.shape && u.bytes == t.bytes));
  }
  BooleanLinear<float> copy = BooleanLinear<float>::from_state(back);
  const BooleanLinear<float>::RowMatrix x = random_matrix(3, 70);
  CHECK(copy.forward(x) == layer.forward(x));
  // A name already in dict is replaced.
  add_prefixed(model, {{"other", Tensor::scalar(std::int64_t{8})}}, "");
  CHECK(read_scalar<std::int64_t>(model, "other") == 8);
}

TEST_CASE("accumulator types parse from their names", "[state][optimizer]") {
  for (AccumulatorType t : {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8})
    CHECK(parse_accumulator_type(accumulator_name(t)) == t);
  for (const char* bad : {"", "F16", "f64", "int8", "i8 "})
    CHECK_THROWS_AS(parse_accumulator_type(bad), InvalidArgument);
  CHECK_THROWS_WITH(parse_accumulator_type("bf16"),
                    contains("unknown accumulator type 'bf16' (expected f32, f16 or i8)"));
}

TEST_CASE("signal scalings parse from their names", "[state][optimizer]") {
  for (SignalScaling s : {SignalScaling::none, SignalScaling::rms, SignalScaling::sign})
    CHECK(parse_signal_scaling(signal_scaling_name(s)) == s);
  for (const char* bad : {"", "RMS", "Sign", "rms "})
    CHECK_THROWS_AS(parse_signal_scaling(bad), InvalidArgument);
  CHECK_THROWS_WITH(parse_signal_scaling("l2"),
                    contains("unknown signal scaling 'l2' (expected none, rms or sign)"));
}

}  // namespace
}  // namespace mbok::test
