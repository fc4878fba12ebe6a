#pragma once
#include "../guard.hpp"

// Validating parser of a safetensors buffer (https://github.com/huggingface/safetensors):
//   8 bytes: N, unsigned little-endian
//   N bytes: UTF-8 JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//            optionally "__metadata__": {string: string}}, possibly padded with spaces
//   the rest: the data section; offsets are relative to its start; tensors cover it exactly,
//            with no overlap and no hole.
// Every check runs before any tensor is used, and every failure is a FormatError naming the
// source and the tensor: a malformed file can never cause an out-of-bounds read.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../../error.hpp"
#include "../../state_dict.hpp"
#include "../base/checked.hpp"

namespace mbok::detail {

inline constexpr std::uint64_t kMaxSafetensorsHeader = 100000000;  // as the reference reader
inline constexpr std::size_t kMaxJsonDepth = 8;                    // a valid header nests 3 deep
// The largest tensor rank mbok reads or writes. Every array in a valid header is a shape
// (rank elements) or data_offsets (2), so the parser refuses longer arrays while it reads
// them: a header of 100 MB of zero dimensions would otherwise cost gigabytes of JSON values.
inline constexpr std::size_t kMaxTensorRank = 8;

struct ParsedTensor {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0;  // relative to the data section
  std::size_t end = 0;
};

struct ParsedSafetensors {
  std::size_t data_offset = 0;        // 8 + N: where the data section starts in the buffer
  std::vector<ParsedTensor> tensors;  // sorted by begin offset (file order)
  std::map<std::string, std::string> metadata;
};

inline bool dtype_from_name(const std::string& s, DType& out) {
  static constexpr DType kAll[] = {DType::f64, DType::f32, DType::f16, DType::bf16,
                                   DType::i64, DType::i32, DType::i8,  DType::u8};
  for (DType d : kAll)
    if (s == dtype_name(d)) {
      out = d;
      return true;
    }
  return false;
}

inline std::uint64_t read_le64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

inline std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Parses the JSON header, rejecting duplicate keys (nlohmann keeps the last one silently)
// and absurd nesting.
inline nlohmann::json parse_header_json(const char* first, const char* last,
                                        const std::string& where) {
  struct Level {
    bool is_object;
    std::set<std::string> keys;
    std::size_t elements = 0;  // of an array
  };
  std::vector<Level> stack;
  auto count_element = [&] {
    if (stack.empty() || stack.back().is_object) return;
    require_format(++stack.back().elements <= kMaxTensorRank, where,
                   ": an array in the header has more than ", kMaxTensorRank,
                   " elements (shapes are limited to rank ", kMaxTensorRank, ")");
  };
  auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        stack.push_back({event == E::object_start, {}, 0});
        require_format(stack.size() <= kMaxJsonDepth, where, ": header nests deeper than ",
                       kMaxJsonDepth, " levels");
        break;
      case E::object_end:
      case E::array_end:
        if (!stack.empty()) stack.pop_back();
        count_element();  // a finished container is an element of its parent
        break;
      case E::key:
        if (!stack.empty() && stack.back().is_object && parsed.is_string()) {
          const auto& key = parsed.get_ref<const std::string&>();
          require_format(stack.back().keys.insert(key).second, where, ": duplicate key '", key,
                         "' in the header");
        }
        break;
      case E::value:
        count_element();
        break;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(first, last, callback, /*allow_exceptions=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(concat("mbok: ", where, ": header is not valid JSON (", e.what(), ")"));
  }
}

inline std::size_t json_size(const nlohmann::json& v, const std::string& where, const char* field) {
  // nlohmann stores every non-negative integer as unsigned, negative ones as signed.
  require_format(v.is_number_unsigned(), where, ": ", field,
                 " must be a non-negative integer, got ", v.dump());
  const std::uint64_t x = v.get<std::uint64_t>();
  require_format(x <= static_cast<std::uint64_t>(SIZE_MAX), where, ": ", field, " ", x,
                 " is too large");
  return static_cast<std::size_t>(x);
}

// Validates `size` bytes at `data` as a safetensors buffer. `source` names it in errors.
inline ParsedSafetensors parse_safetensors(const std::uint8_t* data, std::size_t size,
                                           const std::string& source) {
  const std::string where = "safetensors '" + source + "'";
  require_format(size >= 8, where, ": truncated: ", size,
                 " bytes, shorter than the 8-byte header size field");
  const std::uint64_t n = read_le64(data);
  require_format(n <= kMaxSafetensorsHeader, where, ": header size ", n, " exceeds the limit of ",
                 kMaxSafetensorsHeader, " bytes");
  require_format(n <= size - 8, where, ": truncated: header size ", n, " runs past the end of the ",
                 size, "-byte file");
  require_format(n >= 2, where, ": header size ", n, " is too small for a JSON object");
  const char* first = reinterpret_cast<const char*>(data + 8);
  require_format(first[0] == '{', where, ": header must start with '{', got byte ",
                 static_cast<int>(data[8]));
  const nlohmann::json header = parse_header_json(first, first + n, where);
  require_format(header.is_object(), where, ": header must be a JSON object");

  ParsedSafetensors out;
  out.data_offset = 8 + static_cast<std::size_t>(n);
  const std::size_t data_size = size - out.data_offset;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const nlohmann::json& entry = item.value();
    if (name == "__metadata__") {
      require_format(entry.is_object(), where, ": __metadata__ must be an object of strings");
      for (const auto& kv : entry.items()) {
        require_format(kv.value().is_string(), where, ": __metadata__ value of '", kv.key(),
                       "' must be a string, got ", kv.value().type_name());
        out.metadata[kv.key()] = kv.value().get<std::string>();
      }
      continue;
    }
    const std::string at = where + ": tensor '" + name + "'";
    require_format(entry.is_object(), at, ": entry must be an object, got ", entry.type_name());
    ParsedTensor t;
    t.name = name;
    const auto dtype = entry.find("dtype");
    require_format(dtype != entry.end(), at, ": missing \"dtype\"");
    require_format(dtype->is_string(), at, ": \"dtype\" must be a string");
    require_format(dtype_from_name(dtype->get<std::string>(), t.dtype), at, ": unsupported dtype '",
                   dtype->get<std::string>(), "' (supported: F64 F32 F16 BF16 I64 I32 I8 U8)");
    const auto shape = entry.find("shape");
    require_format(shape != entry.end(), at, ": missing \"shape\"");
    require_format(shape->is_array(), at, ": \"shape\" must be an array");
    require_format(shape->size() <= kMaxTensorRank, at, ": rank ", shape->size(),
                   " exceeds the limit of ", kMaxTensorRank);
    std::size_t numel = 1;
    bool overflow = false;
    for (const auto& d : *shape) {
      require_format(d.is_number_integer(), at, ": shape dimensions must be integers, got ",
                     d.dump());
      require_format(d.is_number_unsigned(), at, ": negative shape dimension ", d.dump());
      const std::uint64_t dim = d.get<std::uint64_t>();
      require_format(dim <= static_cast<std::uint64_t>(INT64_MAX), at, ": shape dimension ", dim,
                     " is too large");
      t.shape.push_back(static_cast<std::int64_t>(dim));
      overflow = overflow || !checked_mul(numel, static_cast<std::size_t>(dim), numel);
    }
    std::size_t bytes = 0;
    overflow = overflow || !checked_mul(numel, dtype_size(t.dtype), bytes);
    require_format(!overflow, at, ": shape ", shape_text(t.shape),
                   " overflows the size of the file");
    const auto offsets = entry.find("data_offsets");
    require_format(offsets != entry.end(), at, ": missing \"data_offsets\"");
    require_format(offsets->is_array() && offsets->size() == 2, at,
                   ": \"data_offsets\" must be an array [begin, end]");
    t.begin = json_size((*offsets)[0], at, "data_offsets begin");
    t.end = json_size((*offsets)[1], at, "data_offsets end");
    require_format(t.begin <= t.end, at, ": data_offsets [", t.begin, ", ", t.end,
                   "] end before they begin");
    require_format(t.end <= data_size, at, ": data_offsets [", t.begin, ", ", t.end,
                   "] out of range: the data section holds ", data_size, " bytes");
    require_format(t.end - t.begin == bytes, at, ": dtype ", dtype_name(t.dtype), " and shape ",
                   shape_text(t.shape), " need ", bytes, " bytes, data_offsets [", t.begin, ", ",
                   t.end, "] hold ", t.end - t.begin);
    out.tensors.push_back(std::move(t));
  }

  // The tensors must tile the data section: sorted by offset, each begins where the previous
  // ended, and the last ends at the end of the buffer.
  std::stable_sort(out.tensors.begin(), out.tensors.end(),
                   [](const ParsedTensor& a, const ParsedTensor& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  std::size_t cursor = 0;
  const ParsedTensor* previous = nullptr;
  for (const ParsedTensor& t : out.tensors) {
    const std::string at = where + ": tensor '" + t.name + "'";
    require_format(t.begin >= cursor, at, ": data_offsets [", t.begin, ", ", t.end,
                   "] overlap tensor '", previous ? previous->name : std::string(),
                   "' (which ends at ", cursor, ")");
    require_format(t.begin == cursor, at, ": hole in the data section: bytes [", cursor, ", ",
                   t.begin, ") belong to no tensor");
    cursor = t.end;
    previous = &t;
  }
  require_format(cursor == data_size, where, ": ", data_size - cursor,
                 " bytes at the end of the data section belong to no tensor (tensors end at ",
                 cursor, ", the data section holds ", data_size, " bytes)");
  return out;
}

}  // namespace mbok::detail
