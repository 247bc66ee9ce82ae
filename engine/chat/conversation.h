// The conversation the engine renders for one request: an optional system message, the earlier
// text turns of the stream (Request::history) and the question with its media, laid out as the
// fixtures' transformers reference lays such conversations out.
#pragma once

#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "qwenvl/engine.h"

namespace qwenvl::model {

// The system message comes first unless `system_prompt` is empty (the template then supplies its
// default); each earlier turn is a user message with one text item and an assistant message with
// the answer as a plain string; the question's items end the list. With no history this is
// single_turn().
std::vector<Message> conversation(const std::string& system_prompt, const std::vector<Turn>& history,
                                  std::vector<ContentItem> user_content);

}  // namespace qwenvl::model
