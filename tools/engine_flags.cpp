// The engine's flags of qwenvl-cli and qwenvl-server: their definitions, checks and the EngineOptions
// they make.
#include "engine_flags.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli_error.h"
#include "qwenvl/placement.h"

namespace qwenvl::cli {

namespace {

[[noreturn]] void fail(const std::string& message) { throw CliError{kUsageError, message}; }

bool is_cuda_device(const std::string& d) {
  return d == "cuda" ||
         (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.find_first_not_of("0123456789", 5) == std::string::npos);
}

}  // namespace

void add_engine_flags(CLI::App& app, EngineFlags& f, const std::string& devices_help) {
  f.model_option = app.add_option("-m,--model", f.model, "Qwen2.5-VL model directory (config.json, safetensors, tokenizer)")
                       ->type_name("DIR");
  f.device_option = app.add_option("--device", f.device, "cpu, cuda or cuda:N (default cpu)")->type_name("DEV");
  f.devices_option = app.add_option("--devices", f.devices, devices_help)->type_name("LIST");
  app.add_option("--placement", f.placement, "auto, pipeline or replicas over --devices (default auto)")
      ->type_name("MODE");
  app.add_option("--dtype", f.dtype, "auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")->type_name("TYPE");
  app.add_option("--max-context", f.max_context,
                 "prompt + answer tokens at most (default 8192; at most the model's max_position_embeddings, "
                 "a larger value is clamped to it)")
      ->type_name("N");
  app.add_option("--min-pixels", f.min_pixels, "least pixels per image / frame after resizing (default: the model's)")
      ->type_name("N");
  app.add_option("--max-pixels", f.max_pixels, "most pixels per image / frame after resizing (default: the model's)")
      ->type_name("N");
}

void add_serving_flags(CLI::App& app, EngineFlags& f) {
  app.add_option("--max-batch", f.max_batch, "sequences decoded together (default 16)")->type_name("N");
  app.add_option("--kv-cache-bytes", f.kv_cache_bytes, "KV cache budget in bytes (default: max-batch x max-context)")
      ->type_name("N");
  app.add_option("--kv-block-size", f.kv_block_size, "tokens per KV cache block (default 64)")->type_name("N");
  app.add_option("--default-max-new-tokens", f.default_max_new_tokens,
                 "answer length when neither the request nor generation_config.json sets one (default 128)")
      ->type_name("N");
  app.add_flag("--no-cuda-graphs", f.no_cuda_graphs, "CUDA: run decode steps without replaying graphs");
  app.add_option("--overlap-decode", f.overlap_decode,
                 "auto (on for CUDA), on or off: queue each decode step before the host reads the last")
      ->type_name("MODE");
  app.add_option("--prefill-tokens-per-step", f.prefill_tokens_per_step,
                 "prompts admitted while others decode are prefilled inside the decode steps, up to N prompt "
                 "tokens a step (default 0: each admission prefills on its own)")
      ->type_name("N");
  app.add_option("--encode-group", f.encode_group,
                 "with --prefill-tokens-per-step: admissions go through the vision tower together once N wait "
                 "(or sooner: room in the batch, 4 steps of waiting; default 8, 1: each at once)")
      ->type_name("N");
  app.add_flag("--time-phases", f.time_phases,
               "measure vision / prefill / decode time (synchronises the device: for benchmarks)");
}

void check_engine_flags(EngineFlags& f, const std::string& program) {
  const bool devices_given = f.devices_option != nullptr && f.devices_option->count() > 0;
  const std::string label = devices_given ? "--devices / --placement: " : "--placement: ";
  try {
    parse_placement(f.placement);
    if (devices_given) {
      const std::vector<DeviceSpec> specs = parse_devices(f.devices);
      if (f.device_option != nullptr && f.device_option->count())
        std::fprintf(stderr, "%s: warning: --devices wins over --device\n", program.c_str());
      f.device = specs.front().device;  // what a list of one runs on
    }
  } catch (const Error& e) {
    fail(label + e.what());
  }
  if (f.max_context < 2) fail("--max-context must be at least 2");
  if (f.min_pixels < 0 || f.max_pixels < 0) fail("--min-pixels and --max-pixels must be positive");
  if (f.min_pixels > 0 && f.max_pixels > 0 && f.min_pixels > f.max_pixels) fail("--min-pixels is above --max-pixels");
  if (f.device != "cpu" && !is_cuda_device(f.device)) fail("--device '" + f.device + "': use cpu, cuda or cuda:N");
  const std::vector<std::string> dtypes = {"auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"};
  if (std::find(dtypes.begin(), dtypes.end(), f.dtype) == dtypes.end())
    fail("--dtype '" + f.dtype + "': use auto, float32, bfloat16 or float16");
}

void check_serving_flags(const EngineFlags& f) {
  if (f.max_batch < 1) fail("--max-batch must be at least 1");
  if (f.kv_cache_bytes < 0) fail("--kv-cache-bytes must be >= 0");
  if (f.kv_block_size < 1) fail("--kv-block-size must be at least 1");
  if (f.default_max_new_tokens < 1) fail("--default-max-new-tokens must be at least 1");
  if (f.overlap_decode != "auto" && f.overlap_decode != "on" && f.overlap_decode != "off")
    fail("--overlap-decode '" + f.overlap_decode + "': use auto, on or off");
  if (f.prefill_tokens_per_step < -1) fail("--prefill-tokens-per-step must be >= 0");
  if (f.encode_group != -1 && f.encode_group < 1) fail("--encode-group must be at least 1");
}

EngineOptions engine_options(const EngineFlags& f) {
  EngineOptions o;
  o.model_dir = f.model;
  o.device = f.device;
  o.devices = f.devices;
  o.placement = f.placement;
  o.dtype = f.dtype;
  o.max_context = f.max_context;
  o.max_batch = f.max_batch;
  o.kv_cache_bytes = f.kv_cache_bytes;
  o.kv_block_size = f.kv_block_size;
  o.default_max_new_tokens = f.default_max_new_tokens;
  o.cuda_graphs = !f.no_cuda_graphs;
  o.time_phases = f.time_phases;
  if (f.overlap_decode != "auto") o.overlap_decode = f.overlap_decode == "on";
  if (f.prefill_tokens_per_step >= 0) o.prefill_tokens_per_step = f.prefill_tokens_per_step;
  if (f.encode_group >= 1) o.encode_group = f.encode_group;
  return o;
}

}  // namespace qwenvl::cli
