// The engine's options as command-line flags, shared by qwenvl-cli and qwenvl-server: one spelling,
// one check and one help line for each. add_engine_flags() gives what both programs take (the model,
// the device, the precision, the context and the image sizes); add_serving_flags() the options that
// matter only to an engine serving many requests (batch, KV cache, graphs, overlap).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "qwenvl/engine.h"

namespace qwenvl::cli {

struct EngineFlags {
  std::string model;
  std::string device = "cpu";
  std::string devices;  // a device list (qwenvl/placement.h); several entries or a cap are planned by the engine
  std::string placement = "auto";  // auto, pipeline, replicas
  std::string dtype = "auto";
  int64_t max_context = 8192;
  int64_t min_pixels = 0, max_pixels = 0;  // per image / frame; 0: the model's processor config
  // add_serving_flags() only; the defaults are EngineOptions'.
  int max_batch = 16;
  int64_t kv_cache_bytes = 0;
  int64_t kv_block_size = 64;
  int default_max_new_tokens = 128;
  bool no_cuda_graphs = false;
  std::string overlap_decode = "auto";  // auto, on, off
  int64_t prefill_tokens_per_step = -1;  // -1: the engine's default
  int encode_group = -1;                 // -1: the engine's default
  bool time_phases = false;

  CLI::Option* model_option = nullptr;    // set by add_engine_flags (not required there: qwenvl-cli --remote has none)
  CLI::Option* device_option = nullptr;   // set by add_engine_flags: was --device given?
  CLI::Option* devices_option = nullptr;  // was --devices given?
};

// --model, --device, --devices (with `devices_help`), --placement, --dtype, --max-context, --min-pixels,
// --max-pixels.
void add_engine_flags(CLI::App& app, EngineFlags& flags, const std::string& devices_help);
// --max-batch, --kv-cache-bytes, --kv-block-size, --default-max-new-tokens, --no-cuda-graphs,
// --overlap-decode, --prefill-tokens-per-step, --time-phases.
void add_serving_flags(CLI::App& app, EngineFlags& flags);

// Checks what add_engine_flags() parsed, throwing a usage CliError that names the flag: the device
// list's and placement's syntax (errors prefixed with "--devices / --placement: "); whether a list
// fits is the planner's to say, when the engine is created. --devices wins over --device (a warning
// on stderr, from `program`, when both are given).
void check_engine_flags(EngineFlags& flags, const std::string& program);
// Checks what add_serving_flags() parsed.
void check_serving_flags(const EngineFlags& flags);

// The engine's options from the flags (the serving ones at EngineOptions' defaults unless given).
EngineOptions engine_options(const EngineFlags& flags);

}  // namespace qwenvl::cli
