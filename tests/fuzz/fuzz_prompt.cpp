// libFuzzer harness: the text a user gives (the system prompt and the question, cut at "\n---\n") with
// some images and videos (the third part: one 'i' or 'v' per item), rendered through Qwen2.5-VL's real
// chat template and turned into the model's input by build_prompt_tokens with a Qwen2-style tokenizer.
// A prompt that itself holds "<|image_pad|>" must be refused with an error, never crash or misplace
// the media; an accepted one has exactly the placeholder tokens its media need.
#include <algorithm>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "chat/prompt.h"
#include "fuzz_support.h"
#include "qwen_chat_template.h"
#include "qwenvl/error.h"
#include "tiny_tokenizer.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const fuzz::TempDir dir;
  static const model::Tokenizer tokenizer =
      model::Tokenizer::from_file(dir.write("tokenizer.json", fuzz::tiny_qwen2_tokenizer_json()));
  static const model::ChatTemplate chat(fuzz::kQwen25VlChatTemplate, "chat_template.json", {});
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 3);
  const std::string system = parts.size() > 1 ? parts[0] : "";
  const std::string question = parts.size() > 1 ? parts[1] : parts[0];
  std::vector<model::ContentItem> items;
  std::vector<model::GridThw> image_grids, video_grids;
  int64_t expected_pads = 0;
  if (parts.size() > 2) {
    for (char c : parts[2].substr(0, 8)) {
      // Grids as smart_resize gives them: even sides, in patches.
      const int64_t side = 2 + 2 * (static_cast<unsigned char>(c) % 4);
      if (c % 2 == 0) {
        items.push_back(model::ContentItem::image());
        image_grids.push_back({1, side, side});
      } else {
        items.push_back(model::ContentItem::video());
        video_grids.push_back({2, side, side});
      }
      expected_pads += model::placeholder_count(items.back().type == model::ContentItem::Type::Image
                                                    ? image_grids.back() : video_grids.back(), 2);
    }
  }
  items.push_back(model::ContentItem::of_text(question));
  model::ChatOptions options;
  options.add_vision_id = size % 2 == 1;
  const std::string rendered = chat.render(model::single_turn(system, items), options);
  try {
    const model::PromptTokens tokens = model::build_prompt_tokens(tokenizer, rendered, image_grids, video_grids, 2, 2);
    fuzz::require(tokens.input_ids.size() == tokens.mm_token_type_ids.size(), "ids and types differ in length");
    const auto media = std::count_if(tokens.mm_token_type_ids.begin(), tokens.mm_token_type_ids.end(),
                                     [](int32_t t) { return t != 0; });
    fuzz::require(media == expected_pads, "placeholder tokens do not match the media");
  } catch (const Error& e) {
    const std::string message = e.what();
    fuzz::require(message.find("placeholders but") != std::string::npos, "unexpected error: " + message);
  }
  return 0;
}
