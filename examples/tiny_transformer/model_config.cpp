#include "model_config.hpp"

#include <mbok/error.hpp>

#include <sstream>

namespace tiny {

void ModelConfig::validate() const {
  if (!(d_model > 0 && layers > 0 && heads > 0 && mlp_mult > 0 && context > 1))
    throw mbok::InvalidArgument("model config: every size must be positive (context > 1)");
  if (d_model % heads != 0)
    throw mbok::InvalidArgument("model config: d_model " + std::to_string(d_model) +
                                " is not a multiple of heads " + std::to_string(heads));
}

std::string ModelConfig::describe() const {
  std::ostringstream s;
  s << "d" << d_model << "-l" << layers << "-h" << heads << "-m" << mlp_mult << "-c" << context;
  return s.str();
}

}  // namespace tiny
