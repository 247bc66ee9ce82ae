// A small tokenizer.json of Qwen2's make (NFC, its split pattern, byte-level BPE, Qwen2.5-VL's added
// tokens), for the harnesses that fuzz what goes into a tokenizer rather than the file itself.
#pragma once

#include <array>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace qwenvl::fuzz {

inline std::string tiny_qwen2_tokenizer_json() {
  // GPT-2's byte -> printable code point table, as UTF-8 strings.
  std::array<std::string, 256> symbol;
  int shift = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const int cp = printable ? b : 256 + shift++;
    symbol[b] = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                          : std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
  }
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[symbol[b]] = id++;
  const std::string space = symbol[' '];
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {space, "w"}, {"o", "r"}, {space + "w", "or"},
      {space + "wor", "l"}, {space + "worl", "d"}, {space, "t"}, {"t", "h"}, {space + "t", "h"}, {space + "th", "e"},
      {"i", "n"}, {space, "in"}, {"1", "2"}, {symbol[0xC3], symbol[0xA9]}, {"c", "a"}, {"ca", "f"}};
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (const auto& [left, right] : merges) {
    if (!vocab.contains(left + right)) vocab[left + right] = id++;
    merge_list.push_back(left + " " + right);
  }
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  const char* const special[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                                 "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                                 "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                                 "<|image_pad|>", "<|video_pad|>"};
  for (const char* content : special)
    added.push_back({{"id", id++}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  for (const char* content : {"<tool_call>", "</tool_call>"})
    added.push_back({{"id", id++}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", false}});
  const char* split =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  nlohmann::ordered_json doc = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", split}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merge_list}}}};
  return doc.dump();
}

}  // namespace qwenvl::fuzz
