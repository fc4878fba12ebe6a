#pragma once
/// \file
/// tokenizer.json "model" of type BPE: vocabulary, ranked merges and the merge loop of the
/// reference (Hugging Face `tokenizers` Word::merge_all): every adjacent pair that has a merge
/// goes into a queue ordered by rank, then position; the lowest-ranked, leftmost pair is merged
/// first and the pairs it forms with its neighbours join the queue. Also byte_fallback
/// (characters missing from the vocabulary become <0xAB> byte tokens), unk_token with
/// fuse_unk, and ignore_merges (a piece that is itself in the vocabulary is one token).

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "json_access.hpp"
#include "utf8.hpp"

namespace mbok::tokenizer_detail {

class BpeModel {
 public:
  BpeModel() = default;

  /// Parses the "model" object at `path`.
  BpeModel(const JsonSource& src, const Json& j, const std::string& path) {
    const Json* type = JsonSource::optional(j, "type");
    if (type != nullptr) {
      if (!type->is_string()) src.fail(path + ".type", "expected a string");
      if (type->get<std::string>() != "BPE")
        src.fail(path + ".type", "unsupported model type \"" + type->get<std::string>() +
                                     "\" (mbok reads BPE only)");
    } else if (!j.is_object() || !j.contains("merges")) {
      src.fail(path, "missing key \"type\"");
    }
    const Json& vocab = src.member(j, "vocab", path);
    if (!vocab.is_object()) src.fail(path + ".vocab", "expected an object of token: id");
    vocab_.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const std::int32_t id = src.id(it.value(), path + ".vocab[\"" + it.key() + "\"]");
      vocab_[it.key()] = id;
      if (static_cast<std::size_t>(id) >= tokens_.size())
        tokens_.resize(static_cast<std::size_t>(id) + 1);
      tokens_[static_cast<std::size_t>(id)] = it.key();
    }

    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const Json* v = JsonSource::optional(j, key);
      if (v != nullptr && !(v->is_string() && v->get<std::string>().empty()))
        src.fail(path + "." + key, "not supported (mbok reads BPE models where it is null)");
    }
    if (const Json* d = JsonSource::optional(j, "dropout"); d != nullptr) {
      if (!d->is_number()) src.fail(path + ".dropout", "expected a number or null");
      if (d->get<double>() != 0.0)
        src.fail(path + ".dropout",
                 "BPE dropout is random; mbok encodes deterministically and reads only null");
    }
    fuse_unk_ = src.bool_or(j, "fuse_unk", path, false);
    byte_fallback_ = src.bool_or(j, "byte_fallback", path, false);
    ignore_merges_ = src.bool_or(j, "ignore_merges", path, false);
    if (const Json* unk = JsonSource::optional(j, "unk_token"); unk != nullptr) {
      if (!unk->is_string()) src.fail(path + ".unk_token", "expected a string or null");
      const auto found = vocab_.find(unk->get<std::string>());
      if (found == vocab_.end())
        src.fail(path + ".unk_token",
                 "unk_token \"" + unk->get<std::string>() + "\" is not in the vocabulary");
      unk_id_ = found->second;
    }
    byte_ids_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      const auto found = vocab_.find(byte_token(static_cast<unsigned char>(b)));
      if (found != vocab_.end()) byte_ids_[static_cast<std::size_t>(b)] = found->second;
    }

    const Json& merges = src.member(j, "merges", path);
    if (!merges.is_array()) src.fail(path + ".merges", "expected an array");
    merges_.reserve(merges.size() * 2);
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const Json& m = merges[rank];
      const std::string where = path + ".merges[" + std::to_string(rank) + "]";
      std::string a, b;
      if (m.is_string()) {
        // The older form "a b": exactly one space, as the reference requires.
        const std::string s = m.get<std::string>();
        const auto sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          src.fail(where,
                   "malformed merge \"" + s + "\" (expected two tokens separated by one space)");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        src.fail(where, "malformed merge (expected \"a b\" or [\"a\", \"b\"])");
      }
      const std::int32_t ia = lookup(src, a, where), ib = lookup(src, b, where);
      const auto merged = vocab_.find(a + b);
      if (merged == vocab_.end())
        src.fail(where, "merge \"" + a + "\" + \"" + b + "\" makes \"" + a + b +
                            "\", which is not in the vocabulary");
      // A repeated pair keeps its last rank, as in the reference's map.
      merges_[key(ia, ib)] = {static_cast<std::int32_t>(rank), merged->second};
    }
  }

  /// "<0xAB>": the byte_fallback token of byte 0xAB.
  static std::string byte_token(unsigned char b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<unsigned>(b));
    return buf;
  }

  std::optional<std::int32_t> token_to_id(std::string_view token) const {
    const auto it = vocab_.find(std::string(token));
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  /// Largest vocabulary id + 1.
  std::size_t size() const { return tokens_.size(); }
  /// The vocabulary string of `id` (empty for a hole in the ids).
  const std::string* token(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) return nullptr;
    return &tokens_[static_cast<std::size_t>(id)];
  }

  /// Appends the ids of `word` (one pre-tokenized piece) to `out`.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      const auto it = vocab_.find(std::string(word));
      if (it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    std::vector<Symbol> syms;
    syms.reserve(word.size());
    std::int32_t pending_unk = -1;  // an unk not yet added (fuse_unk extends it)
    const auto add = [&syms](std::int32_t id) {
      const int n = static_cast<int>(syms.size());
      syms.push_back(Symbol{id, n - 1, n + 1, true});
    };
    std::string ch;
    std::size_t i = 0;
    while (i < word.size()) {
      const std::size_t start = i;
      i += utf8_length(static_cast<unsigned char>(word[i]));
      if (i > word.size()) i = word.size();
      ch.assign(word.data() + start, i - start);
      const auto it = vocab_.find(ch);
      if (it != vocab_.end()) {
        if (pending_unk >= 0) add(pending_unk);
        pending_unk = -1;
        add(it->second);
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
        if (all) {
          // As in the reference, a pending unk is not flushed before byte tokens.
          for (char c : ch) add(byte_ids_[static_cast<unsigned char>(c)]);
          continue;
        }
      }
      // Without an unk_token the character is dropped, as the reference does.
      if (unk_id_) {
        if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
        pending_unk = *unk_id_;
      }
    }
    if (pending_unk >= 0) add(pending_unk);
    if (syms.empty()) return;
    syms.back().next = -1;
    merge_all(syms);
    for (const Symbol& s : syms)
      if (s.alive) out.push_back(s.id);
  }

 private:
  struct Symbol {
    std::int32_t id;
    int prev, next;
    bool alive;
  };
  struct Candidate {
    std::int32_t rank;
    int pos;
    std::int32_t new_id;
  };
  struct Later {  // priority_queue pops the lowest rank, then the lowest position
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    }
  };

  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }

  const std::pair<std::int32_t, std::int32_t>* merge_of(std::int32_t a, std::int32_t b) const {
    const auto it = merges_.find(key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  }

  std::int32_t lookup(const JsonSource& src, const std::string& token,
                      const std::string& where) const {
    const auto it = vocab_.find(token);
    if (it == vocab_.end())
      src.fail(where, "merge names token \"" + token + "\", which is not in the vocabulary");
    return it->second;
  }

  void merge_all(std::vector<Symbol>& syms) const {
    std::priority_queue<Candidate, std::vector<Candidate>, Later> queue;
    for (std::size_t p = 0; p + 1 < syms.size(); ++p)
      if (const auto* m = merge_of(syms[p].id, syms[p + 1].id))
        queue.push(Candidate{m->first, static_cast<int>(p), m->second});
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = syms[static_cast<std::size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = syms[static_cast<std::size_t>(left.next)];
      // Stale entry: the pair at this position changed since it was queued.
      const auto* m = merge_of(left.id, right.id);
      if (m == nullptr || m->second != top.new_id) continue;
      left.id = top.new_id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) syms[static_cast<std::size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0)
        if (const auto* mp = merge_of(syms[static_cast<std::size_t>(left.prev)].id, left.id))
          queue.push(Candidate{mp->first, left.prev, mp->second});
      if (left.next >= 0)
        if (const auto* mn = merge_of(left.id, syms[static_cast<std::size_t>(left.next)].id))
          queue.push(Candidate{mn->first, top.pos, mn->second});
    }
  }

  std::unordered_map<std::string, std::int32_t> vocab_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges_;
  std::optional<std::int32_t> unk_id_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<std::int32_t, 256> byte_ids_{};
};

}  // namespace mbok::tokenizer_detail
