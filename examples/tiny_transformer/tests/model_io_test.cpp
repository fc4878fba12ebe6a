// Model files on the Hugging Face road: a teacher written as a checkpoint directory and a
// Boolean model written as an mbok file load back (with load_pretrained) to the same
// logits, and a file made for another configuration, or no model at all, is refused with a
// message naming the problem.

#include <mbok/tokenizer/trainer.hpp>

#include <filesystem>
#include <fstream>

#include "catch.hpp"
#include "model_io.hpp"

namespace {

tiny::ModelConfig small(tiny::Index d) {
  tiny::ModelConfig c;
  c.d_model = d;
  c.layers = 1;
  c.heads = 2;
  c.kv_heads = 1;
  c.intermediate = 32;
  c.context = 8;
  c.merges = 0;
  return c;
}

tiny::Mat<float> logits_of(tiny::Llama& model, const std::vector<std::int32_t>& tokens) {
  tiny::Mat<float> logits;
  model.forward(tokens, 1, tokens.size(), logits, false);
  return logits;
}

}  // namespace

TEST_CASE("model files round-trip and check their configuration", "[model_io]") {
  const auto dir = std::filesystem::temp_directory_path() / "tiny_transformer_model_io_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string tokenizer = mbok::byte_level_tokenizer_json({}, {"<s>", "</s>"});
  const auto config = small(16).llama(258);
  const std::vector<std::int32_t> tokens = {1, 100, 7, 255, 3, 42};

  tiny::Llama teacher = tiny::random_teacher(config, 3);
  const std::string teacher_dir = (dir / "teacher").string();
  tiny::save_teacher(teacher, teacher_dir, tokenizer);
  REQUIRE(std::filesystem::exists(dir / "teacher" / "config.json"));
  REQUIRE(std::filesystem::exists(dir / "teacher" / "model.safetensors"));
  REQUIRE(std::filesystem::exists(dir / "teacher" / "tokenizer.json"));
  auto loaded = tiny::load_model(teacher_dir, config);
  REQUIRE(loaded.tokenizer);
  tiny::Llama again(loaded.model, mbok::llama::train::dense_projections<float>());
  CHECK(logits_of(again, tokens) == logits_of(teacher, tokens));

  // A Boolean model (K = 2 everywhere) through an mbok file.
  tiny::KernelPlan plan;
  for (const auto& n : mbok::llama::train::projection_names())
    plan[mbok::llama::block_linear_name(0, n)] = 2;
  tiny::Llama boolean = tiny::boolean_model(loaded.model, plan, "last");
  const std::string file = (dir / "boolean.mbok").string();
  tiny::save_mbok(boolean, file, tokenizer, "ptq");
  tiny::Llama reread = tiny::boolean_model(tiny::load_model(file, config).model, plan, "last");
  CHECK(logits_of(reread, tokens) == logits_of(boolean, tokens));
  CHECK(reread.boolean_parameters().size() == 7);  // the last kernel of each projection trains
  CHECK(tiny::boolean_model(loaded.model, plan, "none").boolean_parameters().empty());
  CHECK(tiny::boolean_model(loaded.model, plan, "all").boolean_parameters().size() == 14);

  // The latent baseline starts at the Boolean model's function.
  tiny::Llama latent = tiny::latent_model(loaded.model, plan, "last");
  CHECK(tiny::latent_projections(latent).size() == 7);
  CHECK(logits_of(latent, tokens).isApprox(logits_of(boolean, tokens), 1e-4f));

  // Another configuration, a missing path and a file that is not a model are refused.
  REQUIRE_THROWS_WITH(tiny::load_model(file, small(32).llama(258)),
                      mbok::test::contains("another configuration"));
  REQUIRE_THROWS_WITH(tiny::load_model((dir / "missing").string(), config),
                      mbok::test::contains("does not exist"));
  const std::string garbage = (dir / "garbage.mbok").string();
  std::ofstream(garbage) << "not a model";
  REQUIRE_THROWS_WITH(tiny::load_model(garbage, config), mbok::test::contains("cannot be read"));
  std::filesystem::remove_all(dir);
}
