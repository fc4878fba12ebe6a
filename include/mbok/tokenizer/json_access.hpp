#pragma once
/// \file
/// Reading tokenizer.json with errors that name the file and the JSON path of what was wrong.

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../error.hpp"

namespace mbok::tokenizer_detail {

using Json = nlohmann::json;

/// Where a tokenizer description came from (a file name, or "tokenizer.json").
struct JsonSource {
  std::string name;

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw FormatError("mbok: " + name + ": " + path + ": " + what);
  }

  /// `j[key]`; `j` must be an object that has `key`.
  const Json& member(const Json& j, const char* key, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected a JSON object");
    const auto it = j.find(key);
    if (it == j.end()) fail(path, std::string("missing key \"") + key + "\"");
    return *it;
  }

  /// `j[key]` when `j` has it and it is not null, else nullptr.
  static const Json* optional(const Json& j, const char* key) {
    if (!j.is_object()) return nullptr;
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }

  std::string string_at(const Json& j, const char* key, const std::string& path) const {
    const Json& v = member(j, key, path);
    if (!v.is_string()) fail(path + "." + key, "expected a string");
    return v.get<std::string>();
  }

  std::string string_or(const Json& j, const char* key, const std::string& path,
                        std::string fallback) const {
    const Json* v = optional(j, key);
    if (v == nullptr) return fallback;
    if (!v->is_string()) fail(path + "." + key, "expected a string");
    return v->get<std::string>();
  }

  bool bool_or(const Json& j, const char* key, const std::string& path, bool fallback) const {
    const Json* v = optional(j, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(path + "." + key, "expected true or false");
    return v->get<bool>();
  }

  std::int64_t int_or(const Json& j, const char* key, const std::string& path,
                      std::int64_t fallback) const {
    const Json* v = optional(j, key);
    if (v == nullptr) return fallback;
    if (!v->is_number_integer()) fail(path + "." + key, "expected an integer");
    return v->get<std::int64_t>();
  }

  std::int32_t id(const Json& v, const std::string& path) const {
    if (!v.is_number_integer()) fail(path, "expected a token id (integer)");
    const auto x = v.get<std::int64_t>();
    if (x < 0 || x > INT32_MAX) fail(path, "token id " + std::to_string(x) + " out of range");
    return static_cast<std::int32_t>(x);
  }

  /// The "type" of a component, e.g. "BPE" at `model`.
  std::string type_of(const Json& j, const std::string& path) const {
    return string_at(j, "type", path);
  }
};

/// A one-code-point string such as Metaspace's "replacement" or Strip's "content".
inline std::string single_char(const JsonSource& src, const Json& j, const char* key,
                               const std::string& path, const std::string& fallback) {
  std::string s = src.string_or(j, key, path, fallback);
  if (s.empty()) src.fail(path + "." + key, "expected one character, got an empty string");
  return s;
}

}  // namespace mbok::tokenizer_detail
