// The model directory's chat template, found where transformers 5.17's processor finds it, and the
// conversation it renders into the prompt string (processor.apply_chat_template(..., tokenize=False)).
#pragma once

#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/jinja/template.h"

namespace qwenvl::model {

struct ContentItem {
  enum class Type { Text, Image, Video };
  Type type = Type::Text;
  std::string text;  // Text items only

  static ContentItem of_text(std::string text) { return {Type::Text, std::move(text)}; }
  static ContentItem image() { return {Type::Image, {}}; }
  static ContentItem video() { return {Type::Video, {}}; }
};

struct Message {
  std::string role;  // "system", "user", "assistant"
  // A plain string (emitted as is) or a list of text / image / video items.
  std::variant<std::string, std::vector<ContentItem>> content;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool add_vision_id = false;  // "Picture k: " / "Video k: " before each item
};

// One question about some media: the system message comes first unless `system_prompt` is empty,
// in which case none is passed and the template supplies its default.
std::vector<Message> single_turn(const std::string& system_prompt, std::vector<ContentItem> user_content);

class ChatTemplate {
 public:
  // The processor's lookup (processing_utils.py get_processor_dict): a "chat_template" key
  // in processor_config.json, else chat_template.json, else chat_template.jinja (with
  // additional_chat_templates/*.jinja: the one named "default" or chat_template.jinja is used).
  // tokenizer_config.json's template is not a fallback: the processor does not read it.
  // Throws qwenvl::Error when no template is found or the files conflict or are malformed.
  static ChatTemplate from_model_dir(const std::filesystem::path& dir);

  // `origin` names the template in errors; `special_tokens` are the tokenizer's special_tokens_map
  // (bos_token, eos_token, ...), which the processor passes to the template.
  ChatTemplate(const std::string& source, std::string origin, jinja::Dict special_tokens = {});

  std::string render(const std::vector<Message>& messages, const ChatOptions& options) const;
  // Messages in the JSON layout the processor takes; `extra` adds template variables (tools, ...).
  std::string render_json(const nlohmann::ordered_json& messages, const ChatOptions& options,
                          const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }
  const jinja::Dict& special_tokens() const { return special_tokens_; }

 private:
  std::string render_value(jinja::Value messages, const ChatOptions& options, const jinja::Dict& extra) const;

  std::string source_;
  std::string origin_;
  jinja::Template template_;
  jinja::Dict special_tokens_;
};

// The tokenizer's special_tokens_map as transformers 5.17 builds it from tokenizer_config.json:
// the named tokens (bos, eos, unk, sep, pad, cls, mask) that are set. Empty when the file is missing.
jinja::Dict read_special_tokens_map(const std::filesystem::path& tokenizer_config_json);

}  // namespace qwenvl::model
