#pragma once
/// \file
/// tokenizer.json "post_processor", applied to one sequence's ids when encode() is asked to
/// add special tokens. Supported: TemplateProcessing (its "single" template: LLaMA-2 puts
/// <s> first, LLaMA-3 <|begin_of_text|>), BertProcessing ([CLS] A [SEP]), RobertaProcessing
/// (<s> A </s>), ByteLevel (changes offsets only: nothing to do for ids) and Sequence.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "json_access.hpp"

namespace mbok::tokenizer_detail {

class PostProcessor {
 public:
  PostProcessor() = default;

  PostProcessor(const JsonSource& src, const Json& j, const std::string& path) {
    add(src, j, path);
  }

  /// `ids` (the encoded sequence) with the special tokens of the template around it.
  std::vector<std::int32_t> apply(std::vector<std::int32_t> ids) const {
    for (const Template& t : templates_) {
      std::vector<std::int32_t> out;
      out.reserve(ids.size() + t.before.size() + t.after.size());
      out.insert(out.end(), t.before.begin(), t.before.end());
      out.insert(out.end(), ids.begin(), ids.end());
      out.insert(out.end(), t.after.begin(), t.after.end());
      ids = std::move(out);
    }
    return ids;
  }

  /// The first id put before the sequence, if any (a BOS).
  std::optional<std::int32_t> first_before() const {
    for (const Template& t : templates_)
      if (!t.before.empty()) return t.before.front();
    return std::nullopt;
  }
  /// The last id put after the sequence, if any (an EOS).
  std::optional<std::int32_t> last_after() const {
    for (auto it = templates_.rbegin(); it != templates_.rend(); ++it)
      if (!it->after.empty()) return it->after.back();
    return std::nullopt;
  }

 private:
  struct Template {
    std::vector<std::int32_t> before, after;
  };

  static std::int32_t pair_id(const JsonSource& src, const Json& j, const char* key,
                              const std::string& path) {
    const Json& v = src.member(j, key, path);
    if (!v.is_array() || v.size() != 2) src.fail(path + "." + key, "expected [token, id]");
    return src.id(v[1], path + "." + key + "[1]");
  }

  void add(const JsonSource& src, const Json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = src.type_of(j, path);
    if (type == "Sequence") {
      const Json& list = src.member(j, "processors", path);
      if (!list.is_array()) src.fail(path + ".processors", "expected an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        add(src, list[i], path + ".processors[" + std::to_string(i) + "]");
    } else if (type == "ByteLevel") {
      // Offsets only.
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      templates_.push_back(
          Template{{pair_id(src, j, "cls", path)}, {pair_id(src, j, "sep", path)}});
    } else if (type == "TemplateProcessing") {
      const Json& single = src.member(j, "single", path);
      if (!single.is_array()) src.fail(path + ".single", "expected an array");
      const Json& specials = src.member(j, "special_tokens", path);
      Template t;
      bool seen_sequence = false;
      for (std::size_t i = 0; i < single.size(); ++i) {
        const Json& item = single[i];
        const std::string where = path + ".single[" + std::to_string(i) + "]";
        if (item.is_object() && item.contains("Sequence")) {
          const std::string id = src.string_at(item["Sequence"], "id", where + ".Sequence");
          if (id != "A")
            src.fail(where, "the single template names sequence \"" + id + "\" (expected A)");
          if (seen_sequence) src.fail(where, "sequence A appears twice");
          seen_sequence = true;
        } else if (item.is_object() && item.contains("SpecialToken")) {
          const std::string name =
              src.string_at(item["SpecialToken"], "id", where + ".SpecialToken");
          const Json* entry = JsonSource::optional(specials, name.c_str());
          if (entry == nullptr)
            src.fail(path + ".special_tokens", "missing special token \"" + name + "\"");
          const Json& ids = src.member(*entry, "ids", path + ".special_tokens[\"" + name + "\"]");
          if (!ids.is_array())
            src.fail(path + ".special_tokens[\"" + name + "\"].ids", "expected an array");
          for (const Json& id : ids)
            (seen_sequence ? t.after : t.before).push_back(src.id(id, where));
        } else {
          src.fail(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
      }
      if (!seen_sequence) src.fail(path + ".single", "the template has no sequence A");
      templates_.push_back(std::move(t));
    } else {
      src.fail(path, "unsupported post-processor type \"" + type + "\"");
    }
  }

  std::vector<Template> templates_;
};

}  // namespace mbok::tokenizer_detail
