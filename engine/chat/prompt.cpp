#include "chat/prompt.h"

#include <algorithm>

#include <fmt/format.h>

#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

int32_t required_token(const Tokenizer& tokenizer, std::string_view token) {
  std::optional<int32_t> id = tokenizer.token_to_id(token);
  if (!id) throw Error(fmt::format("the tokenizer has no {} token", token));
  return *id;
}

}  // namespace

int64_t placeholder_count(const GridThw& grid, int64_t merge_size) {
  if (grid[0] <= 0 || grid[1] <= 0 || grid[2] <= 0 || merge_size <= 0)
    throw Error(fmt::format("invalid grid_thw [{}, {}, {}] or merge size {}", grid[0], grid[1], grid[2], merge_size));
  return grid[0] * grid[1] * grid[2] / (merge_size * merge_size);  // the processor's floor division
}

PromptTokens build_prompt_tokens(const Tokenizer& tokenizer, std::string_view rendered_prompt,
                                 const std::vector<GridThw>& image_grids, const std::vector<GridThw>& video_grids,
                                 int64_t image_merge_size, int64_t video_merge_size) {
  const int32_t image_id = required_token(tokenizer, "<|image_pad|>");
  const int32_t video_id = required_token(tokenizer, "<|video_pad|>");
  // The pads are added tokens, matched before BPE, so expanding them after tokenizing gives the ids
  // the processor gets from tokenizing the expanded string.
  std::vector<int32_t> ids = tokenizer.encode(rendered_prompt);
  const size_t images = static_cast<size_t>(std::count(ids.begin(), ids.end(), image_id));
  const size_t videos = static_cast<size_t>(std::count(ids.begin(), ids.end(), video_id));
  if (images != image_grids.size())
    throw Error(fmt::format("the prompt has {} <|image_pad|> placeholders but {} images were given", images,
                            image_grids.size()));
  if (videos != video_grids.size())
    throw Error(fmt::format("the prompt has {} <|video_pad|> placeholders but {} videos were given", videos,
                            video_grids.size()));
  PromptTokens out;
  size_t next_image = 0, next_video = 0;
  for (int32_t id : ids) {
    int64_t copies = 1;
    int32_t type = 0;
    if (id == image_id) {
      copies = placeholder_count(image_grids[next_image++], image_merge_size);
      type = 1;
    } else if (id == video_id) {
      copies = placeholder_count(video_grids[next_video++], video_merge_size);
      type = 2;
    }
    out.input_ids.insert(out.input_ids.end(), static_cast<size_t>(copies), id);
    out.mm_token_type_ids.insert(out.mm_token_type_ids.end(), static_cast<size_t>(copies), type);
  }
  return out;
}

}  // namespace qwenvl::model
