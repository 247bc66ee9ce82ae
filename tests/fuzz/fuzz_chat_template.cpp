// libFuzzer harness: the input as a chat template (lexer, parser), rendered (with the renderer's
// limits) over the message shapes qwenvl sends to Qwen2.5-VL: one image and a question, a system
// prompt, several turns with images and a video, picture numbering on and off.
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "fuzz_support.h"
#include "qwenvl/error.h"

namespace {

using qwenvl::model::ContentItem;
using qwenvl::model::Message;

std::vector<std::vector<Message>> conversations() {
  std::vector<std::vector<Message>> out;
  out.push_back(qwenvl::model::single_turn("", {ContentItem::image(), ContentItem::of_text("Describe this image.")}));
  out.push_back(qwenvl::model::single_turn("You are a careful observer.",
                                           {ContentItem::video(), ContentItem::of_text("What happens?")}));
  out.push_back({{"system", std::string("Answer briefly.")},
                 {"user", std::vector<ContentItem>{ContentItem::image(), ContentItem::image(),
                                                   ContentItem::of_text("Which differs?")}},
                 {"assistant", std::string("The second one.")},
                 {"user", std::vector<ContentItem>{ContentItem::video(), ContentItem::of_text("And now?")}}});
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const std::vector<std::vector<Message>> shapes = conversations();
  const std::string source(reinterpret_cast<const char*>(data), size);
  const std::string origin = "fuzzed.jinja";
  try {
    const model::ChatTemplate chat(source, origin, {});
    for (size_t i = 0; i < shapes.size(); ++i) {
      model::ChatOptions options;
      options.add_vision_id = i == 2;
      options.add_generation_prompt = i != 1;
      try {
        (void)chat.render(shapes[i], options);
      } catch (const Error& e) {
        fuzz::require(std::string(e.what()).rfind("chat template " + origin + ":", 0) == 0,
                      std::string("a render error that does not name the template: ") + e.what());
      }
    }
  } catch (const Error& e) {
    fuzz::require_names_file(e.what(), "chat template " + origin + ":");
  }
  return 0;
}
