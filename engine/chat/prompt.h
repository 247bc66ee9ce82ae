// The language model's input for a rendered prompt, built as the Qwen2.5-VL processor builds it:
// each <|image_pad|> / <|video_pad|> stands for one image / video and becomes prod(grid_thw) /
// merge_size² copies of itself (processing_qwen2_5_vl.py, Qwen2_5_VLProcessor.__call__), the text is tokenized without special tokens added, and
// mm_token_type_ids marks image tokens 1, video tokens 2 and everything else 0 (get_rope_index reads them).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace qwenvl::model {

using GridThw = std::array<int64_t, 3>;  // temporal, height, width in patches

struct PromptTokens {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> mm_token_type_ids;
};

// Number of placeholder tokens one image or video contributes: t·h·w / merge_size².
int64_t placeholder_count(const GridThw& grid, int64_t merge_size);

// `image_grids` / `video_grids` in the order the media appear in the prompt. Throws qwenvl::Error
// when the prompt's pad count differs from the number of images or videos, or a grid is invalid.
PromptTokens build_prompt_tokens(const Tokenizer& tokenizer, std::string_view rendered_prompt,
                                 const std::vector<GridThw>& image_grids, const std::vector<GridThw>& video_grids,
                                 int64_t image_merge_size, int64_t video_merge_size);

}  // namespace qwenvl::model
