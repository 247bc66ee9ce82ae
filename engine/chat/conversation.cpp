#include "chat/conversation.h"

#include <utility>

namespace qwenvl::model {

std::vector<Message> conversation(const std::string& system_prompt, const std::vector<Turn>& history,
                                  std::vector<ContentItem> user_content) {
  std::vector<Message> messages;
  messages.reserve(history.size() * 2 + 2);
  if (!system_prompt.empty()) messages.push_back({"system", system_prompt});
  for (const Turn& turn : history) {
    messages.push_back({"user", std::vector<ContentItem>{ContentItem::of_text(turn.user)}});
    messages.push_back({"assistant", turn.assistant});
  }
  messages.push_back({"user", std::move(user_content)});
  return messages;
}

}  // namespace qwenvl::model
