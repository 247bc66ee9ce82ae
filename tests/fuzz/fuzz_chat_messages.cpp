// libFuzzer harness: JSON messages (as render_json takes them: a server's or an application's) rendered
// through Qwen2.5-VL's real chat template. The first byte picks add_generation_prompt and
// add_vision_id; the rest is the messages array.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "fuzz_support.h"
#include "qwen_chat_template.h"
#include "qwenvl/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const model::ChatTemplate chat(fuzz::kQwen25VlChatTemplate, "chat_template.json", {});
  if (size < 1) return 0;
  model::ChatOptions options;
  options.add_generation_prompt = data[0] & 1;
  options.add_vision_id = data[0] & 2;
  const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(data + 1, data + size, nullptr, false);
  if (messages.is_discarded()) return 0;
  try {
    const std::string prompt = chat.render_json(messages, options);
    fuzz::require(prompt.size() < (size_t{256} << 20), "a prompt beyond the output limit");
  } catch (const Error& e) {
    const std::string message = e.what();
    fuzz::require(message.find("chat_template.json") != std::string::npos ||
                      message == "chat messages must be a JSON array",
                  "a render error that does not name the template: " + message);
  }
  return 0;
}
