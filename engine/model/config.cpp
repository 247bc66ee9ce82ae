// Reads a model directory's configuration files the way transformers 5.17.0 does
// (configuration_qwen2_5_vl.py, modeling_rope_utils.py, generation/utils.py,
// image_processing_base.py, video_processing_utils.py, image/video_processing_qwen2_vl.py).
#include "config.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Upper bounds on the sizes that decide what is allocated before a weight is read (the weight table,
// layer lists, caches): a config beyond them is refused, naming the field. The largest published
// models have about 128 layers, vocabularies under 2^18 and widths under 2^17.
constexpr int64_t kMaxLayers = 1024;          // num_hidden_layers, vision depth
constexpr int64_t kMaxWidth = int64_t{1} << 20;  // hidden and intermediate sizes, heads, vocabulary
constexpr int64_t kMaxPatch = 1024;           // patch sizes, merge size, channels

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the file", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  try {
    json value = json::parse(text.str());
    if (!value.is_object()) throw Error(fmt::format("{}: expected a JSON object at the top level", path.string()));
    return value;
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past a double
    throw Error(fmt::format("{}: malformed JSON: {}", path.string(), e.what()));
  }
}

// A JSON object with the file it came from and its key path, so that every fault names both.
class Reader {
 public:
  Reader(const json& object, fs::path file, std::string prefix)
      : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

  bool has(const std::string& key) const { return object_.contains(key); }
  // Present and not null.
  bool set(const std::string& key) const { return has(key) && !object_.at(key).is_null(); }
  const json& at(const std::string& key) const { return object_.at(key); }
  const fs::path& file() const { return file_; }

  Reader child(const std::string& key) const {
    const json& value = object_.at(key);
    if (!value.is_object()) fail(key, "must be an object");
    return Reader(value, file_, name(key) + ".");
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(fmt::format("{}: key '{}' {}", file_.string(), name(key), what));
  }

  int64_t integer(const std::string& key, const json& value) const {
    if (!value.is_number_integer()) fail(key, fmt::format("must be an integer, got {}", value.dump()));
    return value.get<int64_t>();
  }
  double number(const std::string& key, const json& value) const {
    if (!value.is_number()) fail(key, fmt::format("must be a number, got {}", value.dump()));
    return value.get<double>();
  }

  // Leaves `out` untouched when the key is absent; null is an error for non-nullable fields.
  void get(const std::string& key, int64_t& out) const {
    if (has(key)) out = integer(key, at(key));
  }
  // A size: absent keeps `out`; present must be an integer in [1, max].
  void get_size(const std::string& key, int64_t& out, int64_t max) const {
    get(key, out);
    if (out < 1 || out > max) fail(key, fmt::format("is {}, outside 1..{}", out, max));
  }
  void get(const std::string& key, int& out) const {
    if (has(key)) out = static_cast<int>(integer(key, at(key)));
  }
  void get(const std::string& key, double& out) const {
    if (has(key)) out = number(key, at(key));
  }
  void get(const std::string& key, bool& out) const {
    if (!has(key)) return;
    if (!at(key).is_boolean()) fail(key, fmt::format("must be true or false, got {}", at(key).dump()));
    out = at(key).get<bool>();
  }
  void get(const std::string& key, std::string& out) const {
    if (!has(key)) return;
    if (!at(key).is_string()) fail(key, fmt::format("must be a string, got {}", at(key).dump()));
    out = at(key).get<std::string>();
  }
  void get(const std::string& key, std::optional<int64_t>& out) const {
    if (has(key)) out = at(key).is_null() ? std::nullopt : std::optional<int64_t>(integer(key, at(key)));
  }
  void get(const std::string& key, std::optional<double>& out) const {
    if (has(key)) out = at(key).is_null() ? std::nullopt : std::optional<double>(number(key, at(key)));
  }
  void get(const std::string& key, std::optional<bool>& out) const {
    if (!has(key)) return;
    if (at(key).is_null()) {
      out.reset();
      return;
    }
    if (!at(key).is_boolean()) fail(key, fmt::format("must be true, false or null, got {}", at(key).dump()));
    out = at(key).get<bool>();
  }
  void get(const std::string& key, std::vector<int64_t>& out) const {
    if (!has(key)) return;
    if (!at(key).is_array()) fail(key, fmt::format("must be a list of integers, got {}", at(key).dump()));
    out.clear();
    for (const json& item : at(key)) out.push_back(integer(key, item));
  }
  void get(const std::string& key, std::vector<double>& out) const {
    if (!has(key)) return;
    if (at(key).is_number()) {  // a single value stands for every channel
      out.assign(out.empty() ? 3 : out.size(), number(key, at(key)));
      return;
    }
    if (!at(key).is_array()) fail(key, fmt::format("must be a list of numbers, got {}", at(key).dump()));
    out.clear();
    for (const json& item : at(key)) out.push_back(number(key, item));
  }
  // eos_token_id: an id, a list of ids, or null (no ids).
  void get_ids(const std::string& key, std::vector<int64_t>& out) const {
    if (!has(key)) return;
    const json& value = at(key);
    out.clear();
    if (value.is_null()) return;
    if (value.is_array()) {
      for (const json& item : value) out.push_back(integer(key, item));
      return;
    }
    out.push_back(integer(key, value));
  }

 private:
  std::string name(const std::string& key) const { return prefix_ + key; }

  const json& object_;
  fs::path file_;
  std::string prefix_;
};

// Qwen2_5_VLTextConfig(**fields) with convert_rope_params_to_dict and __post_init__.
TextConfig read_text(const Reader& r) {
  TextConfig t;
  r.get_size("vocab_size", t.vocab_size, kMaxWidth);
  r.get_size("hidden_size", t.hidden_size, kMaxWidth);
  r.get_size("intermediate_size", t.intermediate_size, kMaxWidth);
  r.get_size("num_hidden_layers", t.num_hidden_layers, kMaxLayers);
  r.get_size("num_attention_heads", t.num_attention_heads, kMaxWidth);
  if (r.set("num_key_value_heads")) {
    r.get_size("num_key_value_heads", t.num_key_value_heads, kMaxWidth);
  } else if (r.has("num_key_value_heads")) {
    t.num_key_value_heads = t.num_attention_heads;  // null: backward compatibility
  }
  r.get("hidden_act", t.hidden_act);
  r.get("max_position_embeddings", t.max_position_embeddings);
  r.get("rms_norm_eps", t.rms_norm_eps);

  // rope_parameters = rope_scaling (if a non-empty dict) or rope_parameters; rope_theta inside it
  // wins over a top-level rope_theta, which wins over the class default 1e6; type "mrope" -> "default".
  const char* rope_key = nullptr;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!r.set(key)) continue;
    if (!r.at(key).is_object()) r.fail(key, "must be an object or null");
    if (!r.at(key).empty()) {
      rope_key = key;
      break;
    }
  }
  std::optional<double> top_theta;
  r.get("rope_theta", top_theta);
  t.rope_theta = top_theta.value_or(1000000.0);
  t.rope_type = "default";
  if (rope_key != nullptr) {
    Reader rope = r.child(rope_key);
    std::optional<double> theta;
    rope.get("rope_theta", theta);
    if (theta) t.rope_theta = *theta;
    std::string type = "default";
    if (rope.set("type")) rope.get("type", type);
    if (rope.set("rope_type")) rope.get("rope_type", type);
    t.rope_type = type == "mrope" ? "default" : type;
    rope.get("mrope_section", t.mrope_section);
  }

  std::optional<bool> use_sliding_window = false;
  r.get("use_sliding_window", use_sliding_window);
  t.use_sliding_window = use_sliding_window.value_or(false);
  std::optional<int64_t> sliding_window = 4096;
  r.get("sliding_window", sliding_window);
  t.sliding_window = t.use_sliding_window ? sliding_window : std::nullopt;
  std::optional<int64_t> max_window_layers = 80;
  r.get("max_window_layers", max_window_layers);
  t.max_window_layers = max_window_layers.value_or(t.num_hidden_layers);

  if (r.set("layer_types")) {
    const json& types = r.at("layer_types");
    if (!types.is_array()) r.fail("layer_types", "must be a list of strings");
    for (const json& type : types) {
      if (!type.is_string()) r.fail("layer_types", "must be a list of strings");
      t.layer_types.push_back(type.get<std::string>());
    }
  } else {
    if (t.sliding_window && !max_window_layers) r.fail("max_window_layers", "must be set with a sliding window");
    for (int64_t i = 0; i < t.num_hidden_layers; ++i)
      t.layer_types.push_back(t.sliding_window && i >= t.max_window_layers ? "sliding_attention" : "full_attention");
  }
  if (static_cast<int64_t>(t.layer_types.size()) != t.num_hidden_layers)
    r.fail("layer_types", fmt::format("has {} entries for {} layers", t.layer_types.size(), t.num_hidden_layers));

  r.get("bos_token_id", t.bos_token_id);
  r.get_ids("eos_token_id", t.eos_token_ids);
  r.get("pad_token_id", t.pad_token_id);

  if (t.hidden_size <= 0 || t.num_attention_heads <= 0 || t.hidden_size % t.num_attention_heads != 0)
    r.fail("hidden_size", fmt::format("{} is not a positive multiple of num_attention_heads {}", t.hidden_size,
                                      t.num_attention_heads));
  if (t.num_key_value_heads <= 0 || t.num_attention_heads % t.num_key_value_heads != 0)
    r.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", t.num_key_value_heads,
                                              t.num_attention_heads));
  if (!t.mrope_section.empty()) {
    int64_t sum = 0;
    for (int64_t s : t.mrope_section) {
      if (s < 0 || s > t.head_dim() / 2)
        r.fail("mrope_section", fmt::format("holds {}, outside 0..head_dim / 2 = {}", s, t.head_dim() / 2));
      sum += s;
    }
    if (sum != t.head_dim() / 2)
      r.fail("mrope_section", fmt::format("sums to {}, not head_dim / 2 = {}", sum, t.head_dim() / 2));
  }
  return t;
}

// Qwen2_5_VLVisionConfig(**vision_config).
VisionConfig read_vision(const Reader& r) {
  VisionConfig v;
  r.get_size("depth", v.depth, kMaxLayers);
  r.get_size("hidden_size", v.hidden_size, kMaxWidth);
  r.get("hidden_act", v.hidden_act);
  r.get_size("intermediate_size", v.intermediate_size, kMaxWidth);
  if (r.has("num_heads")) {
    r.get_size("num_heads", v.num_heads, kMaxWidth);
  } else {
    r.get_size("num_attention_heads", v.num_heads, kMaxWidth);  // attribute_map alias
  }
  r.get_size("in_channels", v.in_channels, kMaxPatch);  // the Hub's in_chans / spatial_patch_size are not read
  r.get_size("patch_size", v.patch_size, kMaxPatch);
  r.get_size("spatial_merge_size", v.spatial_merge_size, kMaxPatch);
  r.get_size("temporal_patch_size", v.temporal_patch_size, kMaxPatch);
  r.get("tokens_per_second", v.tokens_per_second);
  r.get("window_size", v.window_size);
  r.get_size("out_hidden_size", v.out_hidden_size, kMaxWidth);
  r.get("fullatt_block_indexes", v.fullatt_block_indexes);
  if (r.set("rope_parameters")) {
    Reader rope = r.child("rope_parameters");
    rope.get("rope_theta", v.rope_theta);
    std::string type = "default";
    if (rope.set("type")) rope.get("type", type);
    if (rope.set("rope_type")) rope.get("rope_type", type);
    v.rope_type = type == "default" ? "axial" : type;
  }
  if (v.hidden_size <= 0 || v.num_heads <= 0 || v.hidden_size % v.num_heads != 0)
    r.fail("hidden_size", fmt::format("{} is not a positive multiple of num_heads {}", v.hidden_size, v.num_heads));
  for (int64_t index : v.fullatt_block_indexes)
    if (index < 0 || index >= v.depth) r.fail("fullatt_block_indexes", fmt::format("{} is not a block index", index));
  return v;
}

// The generation fields this engine uses, read from one JSON object; keys already set stay.
void read_generation_fields(const Reader& r, GenerationConfig& g, bool only_unset) {
  auto take = [&](const char* key, auto& field) {
    if (only_unset && field) return;
    if (r.set(key)) r.get(key, field);
  };
  take("do_sample", g.do_sample);
  take("temperature", g.temperature);
  take("top_k", g.top_k);
  take("top_p", g.top_p);
  take("min_p", g.min_p);
  take("repetition_penalty", g.repetition_penalty);
  take("max_new_tokens", g.max_new_tokens);
  take("max_length", g.max_length);
  take("bos_token_id", g.bos_token_id);
  take("pad_token_id", g.pad_token_id);
  if (!(only_unset && !g.eos_token_ids.empty()) && r.set("eos_token_id")) r.get_ids("eos_token_id", g.eos_token_ids);
}

ProcessorConfig image_defaults() { return ProcessorConfig{}; }

ProcessorConfig video_defaults() {
  ProcessorConfig p;
  p.min_pixels = 128 * 28 * 28;
  p.max_pixels = 768 * 28 * 28;
  return p;
}

// Qwen2VL{Image,Video}Processor(**dict): `size` replaces the class size, then min_pixels / max_pixels
// override its shortest_edge / longest_edge.
void read_processor(const Reader& r, ProcessorConfig& p) {
  if (r.set("size")) {
    Reader size = r.child("size");
    if (!size.set("shortest_edge") || !size.set("longest_edge"))
      r.fail("size", "must hold shortest_edge and longest_edge");
    size.get("shortest_edge", p.min_pixels);
    size.get("longest_edge", p.max_pixels);
  }
  if (r.set("min_pixels")) r.get("min_pixels", p.min_pixels);
  if (r.set("max_pixels")) r.get("max_pixels", p.max_pixels);
  r.get("patch_size", p.patch_size);
  r.get("temporal_patch_size", p.temporal_patch_size);
  r.get("merge_size", p.merge_size);
  r.get("image_mean", p.image_mean);
  r.get("image_std", p.image_std);
  r.get("rescale_factor", p.rescale_factor);
  r.get("do_resize", p.do_resize);
  r.get("do_rescale", p.do_rescale);
  r.get("do_normalize", p.do_normalize);
  r.get("do_convert_rgb", p.do_convert_rgb);
  r.get("resample", p.resample);
  if (p.image_mean.size() != 3) r.fail("image_mean", "must have 3 values");
  if (p.image_std.size() != 3) r.fail("image_std", "must have 3 values");
  if (p.min_pixels <= 0 || p.max_pixels < p.min_pixels)
    r.fail("size", fmt::format("min/max pixels {} / {} are not a valid range", p.min_pixels, p.max_pixels));
  if (p.patch_size <= 0 || p.temporal_patch_size <= 0 || p.merge_size <= 0)
    r.fail("patch_size", "patch_size, temporal_patch_size and merge_size must be positive");
}

// Finds the processor settings: the nested entry of processor_config.json, else the first file of
// `files` that exists; class defaults (source empty) when there is none.
ProcessorConfig load_processor(const fs::path& dir, const char* nested_key, std::initializer_list<const char*> files,
                               ProcessorConfig defaults) {
  const fs::path processor_file = dir / "processor_config.json";
  if (fs::exists(processor_file)) {
    json processor = read_json(processor_file);
    if (processor.contains(nested_key)) {
      Reader top(processor, processor_file, "");
      Reader r = top.child(nested_key);
      read_processor(r, defaults);
      defaults.source = processor_file.filename().string();
      return defaults;
    }
  }
  for (const char* name : files) {
    const fs::path file = dir / name;
    if (!fs::exists(file)) continue;
    json value = read_json(file);
    read_processor(Reader(value, file, ""), defaults);
    defaults.source = name;
    return defaults;
  }
  return defaults;
}

}  // namespace

ModelConfig load_model_config(const fs::path& config_json) {
  if (!fs::is_regular_file(config_json)) throw Error(fmt::format("{}: no such file", config_json.string()));
  const json root = read_json(config_json);
  Reader outer(root, config_json, "");
  // Another architecture's directory would otherwise fail later on some field with a puzzling message.
  if (outer.set("model_type")) {
    std::string model_type;
    outer.get("model_type", model_type);
    if (model_type != "qwen2_5_vl")
      throw Error(fmt::format("{}: model_type '{}' is not Qwen2.5-VL ('qwen2_5_vl'): this directory holds another model",
                              config_json.string(), model_type));
  }
  ModelConfig c;
  // A nested file uses text_config alone; a flat (Hub) file keeps the text fields at the top level.
  c.nested = outer.set("text_config");
  Reader text = c.nested ? outer.child("text_config") : outer;
  c.text = read_text(text);
  if (outer.set("vision_config")) c.vision = read_vision(outer.child("vision_config"));

  outer.get("image_token_id", c.image_token_id);
  outer.get("video_token_id", c.video_token_id);
  outer.get("vision_start_token_id", c.vision_start_token_id);
  outer.get("vision_end_token_id", c.vision_end_token_id);
  outer.get("tie_word_embeddings", c.tie_word_embeddings);
  // Pre-v5 saves put tie_word_embeddings inside text_config; it is forwarded to the outer config.
  if (c.nested && !c.tie_word_embeddings) {
    bool text_tie = false;
    text.get("tie_word_embeddings", text_tie);
    c.tie_word_embeddings = text_tie;
  }
  if (outer.set("dtype")) {
    outer.get("dtype", c.dtype);
  } else if (outer.set("torch_dtype")) {
    outer.get("torch_dtype", c.dtype);
  }
  return c;
}

ModelFiles load_model_files(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(fmt::format("{}: not a model directory", dir.string()));
  const fs::path config_file = dir / "config.json";
  if (!fs::exists(config_file)) throw Error(fmt::format("{}: missing (every model directory has one)", config_file.string()));
  ModelFiles files;
  files.model = load_model_config(config_file);

  // generation_config.json, else the generation fields of config.json's raw top level, then the
  // still-unset ones from its text_config (GenerationConfig.from_model_config).
  const fs::path generation_file = dir / "generation_config.json";
  if (fs::exists(generation_file)) {
    json value = read_json(generation_file);
    read_generation_fields(Reader(value, generation_file, ""), files.generation, false);
    files.generation.from_file = true;
  } else {
    json value = read_json(config_file);
    Reader outer(value, config_file, "");
    read_generation_fields(outer, files.generation, false);
    if (outer.set("text_config")) read_generation_fields(outer.child("text_config"), files.generation, true);
  }

  files.image = load_processor(dir, "image_processor", {"preprocessor_config.json"}, image_defaults());
  files.video = load_processor(dir, "video_processor", {"video_preprocessor_config.json", "preprocessor_config.json"},
                               video_defaults());
  return files;
}

}  // namespace qwenvl::model
