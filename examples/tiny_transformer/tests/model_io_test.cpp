// Model files: a Boolean model round-trips through safetensors, and a file made for another
// configuration or of the wrong kind is refused with a message naming the problem.

#include <filesystem>
#include <random>

#include "catch.hpp"
#include "model_io.hpp"

namespace {

tiny::ModelConfig small(tiny::Index d) {
  tiny::ModelConfig c;
  c.d_model = d;
  c.layers = 1;
  c.heads = 2;
  c.context = 8;
  return c;
}

}  // namespace

TEST_CASE("model files round-trip and check their configuration", "[model_io]") {
  const auto dir = std::filesystem::temp_directory_path() / "tiny_transformer_model_io_test";
  std::filesystem::create_directories(dir);
  const std::string teacher = (dir / "teacher.safetensors").string();
  const std::string boolean = (dir / "boolean.safetensors").string();
  tiny::Transformer<float> model(small(16), 3);
  tiny::save_model(model, teacher, "teacher");

  tiny::KernelPlan plan;
  model.for_each_linear(
      [&](const std::string& name, std::unique_ptr<tiny::Linear<float>>&) { plan[name] = 2; });
  auto student = tiny::convert_model(teacher, small(16), plan, "last");
  tiny::save_model(*student, boolean, "ptq");
  auto loaded = tiny::load_boolean_model(boolean, small(16));

  tiny::Batch b;
  b.rows = 1;
  b.len = 8;
  for (int i = 0; i < 8; ++i) {
    b.inputs.push_back(std::uint8_t('a' + i));
    b.targets.push_back(std::uint8_t('b' + i));
  }
  tiny::Mat<float> y1, y2;
  student->forward(b, y1, false);
  loaded->forward(b, y2, false);
  REQUIRE(y1 == y2);
  // The SVID student differs from the teacher, but not by much with K = 2.
  tiny::Mat<float> yt;
  model.forward(b, yt, false);
  REQUIRE(y1 != yt);

  REQUIRE_THROWS_WITH(
      tiny::load_dense_model(teacher, small(32)),
      mbok::test::contains("was made for configuration d16-l1-h2-m4-c8, this run uses d32"));
  REQUIRE_THROWS_WITH(tiny::load_dense_model(boolean, small(16)),
                      mbok::test::contains("does not hold a full-precision model"));
  REQUIRE_THROWS_WITH(tiny::load_boolean_model(teacher, small(16)),
                      mbok::test::contains("does not hold a Boolean model"));
  REQUIRE_THROWS_WITH(tiny::load_dense_model((dir / "missing.safetensors").string(), small(16)),
                      mbok::test::contains("does not exist"));
  std::filesystem::remove_all(dir);
}
