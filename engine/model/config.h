// A Qwen2.5-VL model directory's configuration, read as transformers 5.17.0 reads it:
// config.json (flat, as published, or nested text_config / vision_config as transformers 5 writes
// it), generation_config.json and the image / video processor configuration. Every field a file
// leaves out takes transformers' class default (transformers' configuration_qwen2_5_vl.py: Qwen2_5_VLConfig, Qwen2_5_VLTextConfig,
// Qwen2_5_VLVisionConfig; the processors' class attributes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qwenvl::model {

// Qwen2_5_VLTextConfig. Defaults are the class's (the 72B shape, rms_norm_eps 1e-5), not the
// published checkpoints': a flat config that omits a field gets these, as in transformers.
struct TextConfig {
  int64_t vocab_size = 152064;
  int64_t hidden_size = 8192;
  int64_t intermediate_size = 29568;
  int64_t num_hidden_layers = 80;
  int64_t num_attention_heads = 64;
  int64_t num_key_value_heads = 8;  // null in the file means num_attention_heads
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-5;
  double rope_theta = 1000000.0;
  std::string rope_type = "default";  // "mrope" in a Hub file is read as "default"
  std::vector<int64_t> mrope_section;  // rope_parameters.mrope_section (rope_scaling in Hub files); empty if absent
  bool use_sliding_window = false;
  std::optional<int64_t> sliding_window;  // None unless use_sliding_window
  int64_t max_window_layers = 80;
  std::vector<std::string> layer_types;  // one per layer: "full_attention" | "sliding_attention"
  std::optional<int64_t> bos_token_id = 151643;
  std::vector<int64_t> eos_token_ids = {151645};
  std::optional<int64_t> pad_token_id;
};

// Qwen2_5_VLVisionConfig (defaults from the class; a Hub file sets hidden_size 1280 and out_hidden_size).
struct VisionConfig {
  int64_t depth = 32;
  int64_t hidden_size = 3584;
  std::string hidden_act = "silu";
  int64_t intermediate_size = 3420;
  int64_t num_heads = 16;
  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t spatial_merge_size = 2;
  int64_t temporal_patch_size = 2;
  int64_t tokens_per_second = 4;  // published checkpoints say 2: never assume
  int64_t window_size = 112;      // pixels
  int64_t out_hidden_size = 3584;
  std::vector<int64_t> fullatt_block_indexes = {7, 15, 23, 31};
  double rope_theta = 10000.0;       // vision rope_parameters.rope_theta
  std::string rope_type = "axial";   // vision rope_parameters.rope_type ("default" is read as "axial")
};

struct ModelConfig {
  TextConfig text;
  VisionConfig vision;
  int64_t image_token_id = 151655;
  int64_t video_token_id = 151656;
  int64_t vision_start_token_id = 151652;
  int64_t vision_end_token_id = 151653;
  bool tie_word_embeddings = false;
  std::string dtype;     // outer dtype / torch_dtype ("bfloat16", "float32", ...); empty when not stated
  bool nested = false;             // true when config.json had a text_config object
};

// generation_config.json; unset fields stay unset (the request or transformers' defaults fill them).
struct GenerationConfig {
  std::optional<bool> do_sample;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> max_length;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  bool from_file = false;  // false when generation_config.json was missing (then built from config.json)
};

// Qwen2VLImageProcessor / Qwen2VLVideoProcessor settings (models/qwen2_vl/image_processing_qwen2_vl.py and video_processing_qwen2_vl.py). The defaults are the
// image processor class's; load_model_files puts the video class's size (100352, 602112) in
// ModelFiles::video when no file configures the video processor.
struct ProcessorConfig {
  int64_t min_pixels = 56 * 56;          // size.shortest_edge
  int64_t max_pixels = 28 * 28 * 1280;   // size.longest_edge (class default; checkpoints say 12845056)
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t merge_size = 2;
  std::vector<double> image_mean = {0.48145466, 0.4578275, 0.40821073};
  std::vector<double> image_std = {0.26862954, 0.26130258, 0.27577711};
  double rescale_factor = 1.0 / 255.0;
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;
  bool do_convert_rgb = true;
  int resample = 3;  // PIL code; 3 = bicubic
  // The file the settings came from (processor_config.json, video_preprocessor_config.json or
  // preprocessor_config.json); empty when none exists: transformers' AutoImageProcessor /
  // AutoVideoProcessor then refuse to load, and these class defaults are what the class itself uses.
  std::string source;
};

struct ModelFiles {
  ModelConfig model;
  GenerationConfig generation;
  ProcessorConfig image;
  ProcessorConfig video;
};

// Reads every configuration file of a model directory. Throws qwenvl::Error naming the file and
// the fault for a missing config.json, malformed JSON or a value of the wrong type or range.
ModelFiles load_model_files(const std::filesystem::path& dir);

ModelConfig load_model_config(const std::filesystem::path& config_json);

}  // namespace qwenvl::model
