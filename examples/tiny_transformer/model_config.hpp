#pragma once
// The model's shape.

#include <string>

#include "common.hpp"

namespace tiny {

/// Bytes: the vocabulary of the byte-level model.
inline constexpr Index kVocab = 256;

/// Shape of the model.
struct ModelConfig {
  Index d_model = 128;
  Index layers = 3;
  Index heads = 4;
  Index mlp_mult = 4;
  Index context = 64;

  /// Throws `mbok::InvalidArgument` for a size <= 0, a context < 2 or a width that the
  /// heads do not divide.
  void validate() const;
  /// "d<d_model>-l<layers>-h<heads>-m<mlp_mult>-c<context>" (names files and checkpoints).
  std::string describe() const;
};

}  // namespace tiny
