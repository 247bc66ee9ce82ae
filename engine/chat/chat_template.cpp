#include "chat/chat_template.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "qwenvl/error.h"

namespace qwenvl::model {
namespace fs = std::filesystem;
using jinja::Dict;
using jinja::List;
using jinja::Value;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::ordered_json read_json(const fs::path& path) {
  try {
    return nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{} is not valid JSON: {}", path.string(), e.what()));
  }
}

// A template value as the processor holds it: a string, or a {name: template} mapping whose
// "default" entry apply_chat_template uses.
std::string pick_template(const nlohmann::ordered_json& value, const fs::path& file) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) {
    auto it = value.find("default");
    if (it == value.end() || !it->is_string())
      throw Error(fmt::format("{}: several chat templates and none named \"default\"", file.string()));
    return it->get<std::string>();
  }
  throw Error(fmt::format("{}: chat_template must be a string or a mapping of strings", file.string()));
}

Value to_value(const Message& m) {
  Dict d;
  d.set("role", Value(m.role));
  if (const auto* text = std::get_if<std::string>(&m.content)) {
    d.set("content", Value(*text));
  } else {
    List items;
    for (const ContentItem& item : std::get<std::vector<ContentItem>>(m.content)) {
      Dict c;
      switch (item.type) {
        case ContentItem::Type::Text:
          c.set("type", Value("text"));
          c.set("text", Value(item.text));
          break;
        case ContentItem::Type::Image: c.set("type", Value("image")); break;
        case ContentItem::Type::Video: c.set("type", Value("video")); break;
      }
      items.emplace_back(std::move(c));
    }
    d.set("content", Value(std::move(items)));
  }
  return Value(std::move(d));
}

}  // namespace

std::vector<Message> single_turn(const std::string& system_prompt, std::vector<ContentItem> user_content) {
  std::vector<Message> messages;
  if (!system_prompt.empty()) messages.push_back({"system", system_prompt});
  messages.push_back({"user", std::move(user_content)});
  return messages;
}

Dict read_special_tokens_map(const fs::path& tokenizer_config_json) {
  Dict tokens;
  if (!fs::is_regular_file(tokenizer_config_json)) return tokens;
  nlohmann::ordered_json config = read_json(tokenizer_config_json);
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (it->is_string()) {
      tokens.set(key, Value(it->get<std::string>()));
    } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      tokens.set(key, Value((*it)["content"].get<std::string>()));  // AddedToken layout
    } else {
      throw Error(fmt::format("{}: {} must be a string or an added-token object", tokenizer_config_json.string(), key));
    }
  }
  return tokens;
}

ChatTemplate ChatTemplate::from_model_dir(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(fmt::format("model directory {} does not exist", dir.string()));
  const fs::path processor_config = dir / "processor_config.json";
  const fs::path legacy_json = dir / "chat_template.json";
  const fs::path raw_jinja = dir / "chat_template.jinja";
  const fs::path additional_dir = dir / "additional_chat_templates";

  std::map<std::string, fs::path> additional;  // name -> file
  if (fs::is_directory(additional_dir))
    for (const auto& entry : fs::directory_iterator(additional_dir))
      if (entry.path().extension() == ".jinja" && fs::is_regular_file(entry.path()))
        additional[entry.path().stem().string()] = entry.path();

  // Candidates in the processor's order of reading; the processor_config.json key wins over both.
  std::string source;
  fs::path origin;
  bool found = false;
  if (fs::is_regular_file(legacy_json)) {
    nlohmann::ordered_json j = read_json(legacy_json);
    if (!j.is_object() || !j.contains("chat_template"))
      throw Error(fmt::format("{} has no \"chat_template\" key", legacy_json.string()));
    if (!additional.empty())
      throw Error(fmt::format("{}: a legacy chat_template.json cannot be combined with template files in {}",
                              dir.string(), additional_dir.string()));
    source = pick_template(j["chat_template"], legacy_json);
    origin = legacy_json;
    found = true;
  } else if (fs::is_regular_file(raw_jinja)) {
    source = read_file(raw_jinja);
    origin = raw_jinja;
    found = true;
  } else if (!additional.empty()) {
    auto it = additional.find("default");
    if (it == additional.end())
      throw Error(fmt::format("{}: several chat templates in {} and none named \"default\"", dir.string(),
                              additional_dir.string()));
    source = read_file(it->second);
    origin = it->second;
    found = true;
  }
  if (fs::is_regular_file(processor_config)) {
    nlohmann::ordered_json j = read_json(processor_config);
    auto it = j.find("chat_template");
    if (j.is_object() && it != j.end() && !it->is_null()) {
      source = pick_template(*it, processor_config);
      origin = processor_config;
      found = true;
    }
  }
  if (!found)
    throw Error(fmt::format("{} has no chat template (looked for a \"chat_template\" key in processor_config.json, "
                            "chat_template.json, chat_template.jinja and additional_chat_templates/)",
                            dir.string()));
  return ChatTemplate(source, origin.string(), read_special_tokens_map(dir / "tokenizer_config.json"));
}

ChatTemplate::ChatTemplate(const std::string& source, std::string origin, Dict special_tokens)
    : source_(source), origin_(std::move(origin)), template_(source, origin_),
      special_tokens_(std::move(special_tokens)) {}

std::string ChatTemplate::render(const std::vector<Message>& messages, const ChatOptions& options) const {
  List list;
  for (const Message& m : messages) list.push_back(to_value(m));
  return render_value(Value(std::move(list)), options, Dict{});
}

std::string ChatTemplate::render_json(const nlohmann::ordered_json& messages, const ChatOptions& options,
                                      const nlohmann::ordered_json& extra) const {
  if (!messages.is_array()) throw Error("chat messages must be a JSON array");
  Value messages_value, extra_value;
  try {
    messages_value = jinja::from_json(messages);
    extra_value = jinja::from_json(extra.is_null() ? nlohmann::ordered_json::object() : extra);
  } catch (const jinja::TemplateFault& e) {
    throw Error(fmt::format("chat messages for {}: {}", origin_, e.what()));
  }
  if (!extra_value.is_mapping()) throw Error("extra chat template variables must be a JSON object");
  return render_value(std::move(messages_value), options, extra_value.as_dict());
}

std::string ChatTemplate::render_value(Value messages, const ChatOptions& options, const Dict& extra) const {
  // processor.apply_chat_template: render(messages, tools, documents, add_generation_prompt,
  // **{**special_tokens_map, **kwargs}); add_vision_id travels as a keyword argument.
  Dict vars;
  vars.set("messages", std::move(messages));
  vars.set("tools", Value::none());
  vars.set("documents", Value::none());
  vars.set("add_generation_prompt", Value(options.add_generation_prompt));
  for (const auto& [k, v] : special_tokens_.items) vars.set(k, v);
  vars.set("add_vision_id", Value(options.add_vision_id));
  for (const auto& [k, v] : extra.items) vars.set(k, v);
  return template_.render(vars);
}

}  // namespace qwenvl::model
