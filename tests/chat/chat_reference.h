// Reading the chat-template reference cases (reference/chat_template_<model>.json, written by
// scripts/fixtures/chat_template_cases.py): their content lists as the template's ContentItems.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "chat/chat_template.h"

namespace qwenvl::model::test_reference {

// [{"type": "text", "text": ...}, {"type": "image"}, {"type": "video"}] as ContentItems, in order.
inline std::vector<ContentItem> to_items(const nlohmann::ordered_json& content) {
  std::vector<ContentItem> items;
  for (const auto& c : content) {
    const std::string type = c["type"];
    if (type == "text") items.push_back(ContentItem::of_text(c["text"]));
    else if (type == "image") items.push_back(ContentItem::image());
    else if (type == "video") items.push_back(ContentItem::video());
    else throw std::runtime_error("unexpected content type " + type);
  }
  return items;
}

}  // namespace qwenvl::model::test_reference
