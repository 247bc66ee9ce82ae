// Byte-level BPE: a pre-tokenized word (raw bytes) becomes token ids by repeatedly applying the
// lowest-ranked merge, leftmost first on ties, as HF tokenizers' BPE model does (word.rs merge_all).
// A linked list of symbols and a heap of candidate merges keep long words O(n log n); results for
// short words are cached.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qwenvl::model {

class Bpe {
 public:
  struct Merge {
    int32_t left, right, merged;  // token ids; rank = position in the merge list
  };

  // byte_ids[b]: the id of the one-byte token b, or -1 when the vocabulary lacks it (such bytes are
  // dropped, as HF does without an unk token). `ignore_merges`: words found whole in `vocab` are
  // one token (HF BPE option).
  Bpe(std::array<int32_t, 256> byte_ids, const std::vector<Merge>& merges,
      std::unordered_map<std::string, int32_t> vocab, bool ignore_merges);

  // Appends the ids of `word` to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct RankedMerge {
    uint64_t key;  // (left << 32 | right) + 1; 0 marks an empty slot
    int32_t rank, merged;
  };
  const RankedMerge* find_merge(int32_t left, int32_t right) const;
  void merge_all(std::string_view word, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_ids_;
  std::vector<RankedMerge> table_;  // open addressing, power-of-two size
  uint64_t mask_ = 0;
  std::unordered_map<std::string, int32_t> vocab_;
  bool ignore_merges_;

  static constexpr size_t kCacheCapacity = 10000;  // HF's default BPE cache size
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace qwenvl::model
