// qwenvl-bench: the caption workload of docs/BENCHMARK-METHOD.md through the public API. For each
// batch size B, B requests (one random 448x448 RGB frame, "Describe this image.", greedy, exactly
// 32 new tokens) are submitted at once to an engine with max_batch = B; one warm-up, then the
// median of the timed runs.
//
//   qwenvl-bench MODEL_DIR [--device cuda] [--batches 1,8,32,64] [--runs 3] [--new-tokens 32]
//                [--max-context 512] [--cuda-graphs 1] [--phases 0] [--idle-profile 0] [--overlap-decode 0|1]
//                [--in-flight 64,128 [--duration-s 30] [--warmup-s 5]] [--json-schema SCHEMA] [--json FILE]
//                [--devices LIST [--placement auto|pipeline|replicas]] [--prefill-tokens-per-step N]
//                [--encode-group N]
// --phases 1: the engine times its vision, prefill and decode phases (synchronising the device after
// each, which costs a little latency) and the table gains their split of a run.
// --idle-profile 1 (CUDA, built with CUPTI): after the timed runs, one more run per batch size under
// a CUPTI activity trace (tools/gpu_activity.h), and a second table: how much of the decode phase
// the GPU sat idle (tools/activity_summary.h defines the window and the steady cycles).
// --overlap-decode 0|1: sets EngineOptions::overlap_decode (each decode step queued before the host
// reads the previous step's tokens); without the flag, the engine's default (on for CUDA).
// --prefill-tokens-per-step N: sets EngineOptions::prefill_tokens_per_step (prompts admitted while
// others decode are prefilled inside the decode steps, up to N tokens a step; 0: on their own).
// Without the flag, the engine's default (0).
// --encode-group N: sets EngineOptions::encode_group (with the above: admissions go through the
// vision tower together once N wait); without the flag, the engine's default (8).
// --json-schema SCHEMA: every request's answer constrained to the schema (SamplingParams::json_schema),
// to measure what the mask costs a step beside the same run without it. EOS stays allowed where the
// document is complete (the engine refuses ignore_eos with a schema), so pick a schema whose
// documents cannot end within --new-tokens (say an array with minItems 50): a run in which a request
// ends early fails loudly, as any run with fewer tokens does.
// --devices LIST [--placement auto|pipeline|replicas]: the engine over a device list (qwenvl/placement.h),
// e.g. cuda:0,cuda:0 --placement pipeline: two stages on one card, beside --device cuda:0 (issue 14's
// cost of hand-offs); --devices wins over --device, as in EngineOptions (the command line is printed).
// Prints a markdown table; --json also writes one object per batch size (for caption_bench.sh and,
// with the prompt length and the phase times, scripts/bench/batch1_floor.py).
//
// Saturated mode (--in-flight 64,128 [--duration-s 30] [--warmup-s 5]), instead of the batches: for
// each N, an engine with max_batch = N and N of the same requests kept in flight, each one
// resubmitted as it ends; after the warm-up, the answers that end within the measured window give
// the steady-state frames/s and their latency percentiles (tools/saturated_load.h). A camera
// deployment's figure. With --phases 1 the table gains the window's phase split (time_phases
// synchronises the device: take frames/s from a run without it).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "activity_summary.h"
#include "number_list.h"
#include "qwenvl/engine.h"
#include "saturated_load.h"
#ifdef QWENVL_WITH_CUPTI
#include "gpu_activity.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

struct RunTimes {
  double latency_ms = 0;  // submit of the first request to the last answer
  double ttft_ms = 0;     // median over the requests
  int prompt_tokens = 0;  // of the last request (the workload's prompts are all alike)
};

struct Row {
  int batch = 0, prompt_tokens = 0;
  double latency_ms = 0, ttft_ms = 0, decode_tokens_per_s = 0, frames_per_s = 0, peak_gib = 0;
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;  // per run (--phases 1)
  qwenvl::DecodeHostTimes host;  // the inference thread's decode steps over the timed runs (always kept)
};

// µs a step of `ms` spent over `steps` steps (0 when none).
double per_step_us(double ms, uint64_t steps) { return steps ? 1000.0 * ms / static_cast<double>(steps) : 0.0; }

// The profiled run of one batch size (--idle-profile 1).
struct IdleRow {
  int batch = 0;
  qwenvl::tools::DecodePhase decode;
  uint64_t engine_decode_steps = 0;  // the engine's count of decode forwards in the run
  double run_ms = 0;                 // the profiled run's latency (CUPTI adds a little)
};

#ifdef QWENVL_WITH_CUPTI
// "cuda" -> 0, "cuda:N" -> N.
int cuda_index(const std::string& device) {
  const size_t colon = device.find(':');
  return colon == std::string::npos ? 0 : std::stoi(device.substr(colon + 1));
}
#endif

// The workload's request: one size x size RGB frame, the caption prompt, greedy, exactly
// `new_tokens` tokens.
// The --json-schema text, empty when unconstrained.
std::string g_json_schema;
std::string g_devices, g_placement = "auto";  // EngineOptions::devices / placement
std::optional<int64_t> g_prefill_tokens_per_step;     // EngineOptions::prefill_tokens_per_step; unset: the default
std::optional<int> g_encode_group;                    // EngineOptions::encode_group; unset: the default

qwenvl::Request caption_request(const std::vector<uint8_t>& rgb, int size, int new_tokens) {
  qwenvl::Request request;
  request.images.push_back(qwenvl::FrameView::packed(qwenvl::PixelFormat::kRGB, size, size, rgb.data()));
  request.prompt = "Describe this image.";
  request.sampling.max_new_tokens = new_tokens;
  request.sampling.temperature = 0.0;
  request.sampling.ignore_eos = g_json_schema.empty();
  request.sampling.json_schema = g_json_schema;
  return request;
}

// One run: B requests submitted together; fails loudly unless every request got exactly
// `new_tokens` tokens.
RunTimes run_once(qwenvl::Engine& engine, int batch, const std::vector<uint8_t>& rgb, int size, int new_tokens) {
  std::vector<qwenvl::Submission> submissions;
  submissions.reserve(batch);
  const auto start = Clock::now();
  for (int i = 0; i < batch; ++i) submissions.push_back(engine.submit(caption_request(rgb, size, new_tokens)));
  RunTimes t;
  std::vector<double> ttfts;
  for (auto& s : submissions) {
    qwenvl::Result r = s.result.get();
    if (r.status != qwenvl::Status::kAnswered)
      throw qwenvl::Error(std::string("request ") + qwenvl::status_name(r.status) + ": " + r.error);
    if (static_cast<int>(r.token_ids.size()) != new_tokens)
      throw qwenvl::Error("request generated " + std::to_string(r.token_ids.size()) + " tokens, not " +
                          std::to_string(new_tokens));
    ttfts.push_back(r.ttft_ms);
    t.prompt_tokens = r.prompt_tokens;
  }
  t.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  t.ttft_ms = median(ttfts);
  return t;
}

// The date and time now, for the tables' headings.
std::string utc_now() {
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return date;
}

// --in-flight: for each N, a fresh engine with max_batch = N under the saturated load
// (saturated_load.h); one table, and --json writes one object per N.
int run_saturated_mode(const std::string& model_dir, const std::string& device, int max_context, bool cuda_graphs,
                       bool phases, std::optional<bool> overlap_decode, const std::vector<int>& in_flight,
                       double duration_s, double warmup_s, int new_tokens, const std::vector<uint8_t>& rgb, int size,
                       const std::string& json_path, const std::string& command) {
  std::vector<qwenvl::tools::SaturatedResult> results;
  std::vector<double> peaks_gib;
  bool graphs_used = false;
  try {
    for (int n : in_flight) {
      qwenvl::EngineOptions options;
      options.model_dir = model_dir;
      options.device = device;
      options.devices = g_devices;
      options.placement = g_placement;
      options.dtype = "auto";
      options.max_batch = n;
      options.max_context = max_context;
      options.cuda_graphs = cuda_graphs;
      options.time_phases = phases;
      options.overlap_decode = overlap_decode;
      options.prefill_tokens_per_step = g_prefill_tokens_per_step;
      options.encode_group = g_encode_group;
      auto engine = qwenvl::Engine::create(options);
      qwenvl::tools::SaturatedOptions load;
      load.in_flight = n;
      load.duration_s = duration_s;
      load.warmup_s = warmup_s;
      load.new_tokens = new_tokens;
      results.push_back(qwenvl::tools::run_saturated(
          *engine, [&] { return caption_request(rgb, size, new_tokens); }, load));
      const qwenvl::EngineStats stats = engine->stats();
      graphs_used = stats.decode_graphs;
      peaks_gib.push_back(static_cast<double>(stats.peak_device_memory_bytes) / (1024.0 * 1024.0 * 1024.0));
      const auto& r = results.back();
      std::fprintf(stderr, "N=%d %.2f frames/s (%llu answers in %.0f s) p50 %.1f ms p99 %.1f ms\n", n, r.frames_per_s,
                   static_cast<unsigned long long>(r.answers), r.duration_s, r.latency_p50_ms, r.latency_p99_ms);
    }
  } catch (const std::exception& e) {
    std::cerr << "qwenvl-bench: " << e.what() << "\n";
    return 1;
  }

  std::printf("qwenvl saturated caption benchmark (%s; device %s, dtype auto: bf16 on cuda; decode graphs %s; "
              "time_phases %s), %s\ncommand: %s\n\n",
              model_dir.c_str(), device.c_str(), graphs_used ? "on" : "off", phases ? "on (synchronises)" : "off",
              utc_now().c_str(), command.c_str());
  std::printf("N requests in flight (each resubmitted as it ends), %.0f s warm-up, then a %.0f s window: "
              "frames/s = answers ending in the window / window; latency = submit to answer; mean decode batch = "
              "the engine's decode rows / decode steps in the window.\n\n",
              warmup_s, duration_s);
  std::printf("| in flight | frames/s | answers | latency p50 ms | latency p99 ms | decode steps | prefill forwards | "
              "of them in decode steps | vision forwards | mean decode batch | peak GiB |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::printf("| %d | %.2f | %llu | %.1f | %.1f | %llu | %llu | %llu | %llu | %.1f | %.2f |\n", r.in_flight,
                r.frames_per_s, static_cast<unsigned long long>(r.answers), r.latency_p50_ms, r.latency_p99_ms,
                static_cast<unsigned long long>(r.decode_steps), static_cast<unsigned long long>(r.prefill_forwards),
                static_cast<unsigned long long>(r.mixed_steps), static_cast<unsigned long long>(r.vision_forwards),
                r.mean_decode_batch, peaks_gib[i]);
  }
  std::printf("\nThe inference thread's decode steps in the window by part (µs a step; clock reads only: `wait` is "
              "device time the host did not cover; prefills on their own run between steps and are in none of them):\n\n");
  std::printf("| in flight | steps | mask fill | launch | wait | grammar accept | tokens | step | steps' share of the window |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : results) {
    const qwenvl::DecodeHostTimes& h = r.decode_host;
    const double total_ms = h.mask_fill_ms + h.launch_ms + h.wait_ms + h.grammar_accept_ms + h.tokens_ms;
    std::printf("| %d | %llu | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f%% |\n", r.in_flight,
                static_cast<unsigned long long>(h.steps), per_step_us(h.mask_fill_ms, h.steps),
                per_step_us(h.launch_ms, h.steps), per_step_us(h.wait_ms, h.steps),
                per_step_us(h.grammar_accept_ms, h.steps), per_step_us(h.tokens_ms, h.steps),
                per_step_us(total_ms, h.steps), 100 * total_ms / (r.duration_s * 1e3));
  }
  if (phases) {
    std::printf("\nWhere the window's time goes (the device synchronised after each phase; share of the window):\n\n");
    std::printf("| in flight | vision ms | prefill ms | decode ms | other ms | vision | prefill | decode | other |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& r : results) {
      const double window_ms = r.duration_s * 1e3;
      const double other = window_ms - r.vision_ms - r.prefill_ms - r.decode_ms;
      std::printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", r.in_flight, r.vision_ms,
                  r.prefill_ms, r.decode_ms, other, 100 * r.vision_ms / window_ms, 100 * r.prefill_ms / window_ms,
                  100 * r.decode_ms / window_ms, 100 * other / window_ms);
    }
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << "[";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      out << (i ? ",\n" : "\n") << "{\"in_flight\": " << r.in_flight << ", \"frames_per_s\": " << r.frames_per_s
          << ", \"answers\": " << r.answers << ", \"duration_s\": " << r.duration_s
          << ", \"latency_p50_ms\": " << r.latency_p50_ms << ", \"latency_p99_ms\": " << r.latency_p99_ms
          << ", \"decode_steps\": " << r.decode_steps << ", \"prefill_forwards\": " << r.prefill_forwards
          << ", \"mixed_steps\": " << r.mixed_steps << ", \"vision_forwards\": " << r.vision_forwards
          << ", \"mean_decode_batch\": " << r.mean_decode_batch << ", \"vision_ms\": " << r.vision_ms
          << ", \"prefill_ms\": " << r.prefill_ms << ", \"decode_ms\": " << r.decode_ms
          << ", \"peak_gib\": " << peaks_gib[i] << "}";
    }
    out << "\n]\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]).rfind("--", 0) == 0) {
    std::cerr << "usage: qwenvl-bench MODEL_DIR [--device cuda] [--batches 1,8,32,64] [--runs 3] "
                 "[--new-tokens 32] [--max-context 512] [--cuda-graphs 1] [--phases 0] [--idle-profile 0] "
                 "[--overlap-decode 0|1] [--in-flight 64,128 [--duration-s 30] [--warmup-s 5]] [--json-schema SCHEMA] "
                 "[--json FILE] [--devices LIST [--placement auto|pipeline|replicas]] [--prefill-tokens-per-step N] [--encode-group N]\n";
    return 1;
  }
  const std::string model_dir = argv[1];
  std::string device = "cuda", json_path;
  std::vector<int> batches = {1, 8, 32, 64};
  std::vector<int> in_flight;  // saturated mode when set
  double duration_s = 30, warmup_s = 5;
  int runs = 3, new_tokens = 32, max_context = 512;
  bool cuda_graphs = true, phases = false, idle_profile = false;
  std::optional<bool> overlap_decode;  // unset: the engine's default
  bool graphs_used = false;
  const int size = 448;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--device") device = value;
    else if (flag == "--batches") batches = qwenvl::tools::parse_number_list(value);
    else if (flag == "--runs") runs = std::stoi(value);
    else if (flag == "--new-tokens") new_tokens = std::stoi(value);
    else if (flag == "--max-context") max_context = std::stoi(value);
    else if (flag == "--json") json_path = value;
    else if (flag == "--cuda-graphs") cuda_graphs = value != "0";
    else if (flag == "--phases") phases = value != "0";
    else if (flag == "--overlap-decode") overlap_decode = value != "0";
    else if (flag == "--idle-profile") idle_profile = value != "0";
    else if (flag == "--in-flight") in_flight = qwenvl::tools::parse_number_list(value);
    else if (flag == "--duration-s") duration_s = std::stod(value);
    else if (flag == "--warmup-s") warmup_s = std::stod(value);
    else if (flag == "--json-schema") g_json_schema = value;
    else if (flag == "--devices") g_devices = value;
    else if (flag == "--placement") g_placement = value;
    else if (flag == "--prefill-tokens-per-step") g_prefill_tokens_per_step = std::stoll(value);
    else if (flag == "--encode-group") g_encode_group = std::stoi(value);
    else {
      std::cerr << "unknown option " << flag << "\n";
      return 1;
    }
  }
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);

  // Random pixels, not zeros: a flat image could take a cheaper path than a real frame.
  std::vector<uint8_t> rgb(static_cast<size_t>(size) * size * 3);
  std::mt19937 gen(1234);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : rgb) b = static_cast<uint8_t>(byte(gen));

  if (!in_flight.empty()) {
    if (idle_profile) {
      std::cerr << "qwenvl-bench: --idle-profile 1 profiles the batch runs, not --in-flight\n";
      return 1;
    }
    return run_saturated_mode(model_dir, device, max_context, cuda_graphs, phases, overlap_decode, in_flight,
                              duration_s, warmup_s, new_tokens, rgb, size, json_path, command);
  }

  std::vector<Row> rows;
  std::vector<IdleRow> idle_rows;
  const qwenvl::tools::DecodePatterns patterns;
  if (idle_profile && device.rfind("cuda", 0) != 0) {
    std::cerr << "qwenvl-bench: --idle-profile 1 traces the GPU through CUPTI: it needs --device cuda (device is "
              << device << ")\n";
    return 1;
  }
#ifdef QWENVL_WITH_CUPTI
  std::unique_ptr<qwenvl::tools::GpuActivity> profiler;
#endif
  try {
    if (idle_profile) {
#ifdef QWENVL_WITH_CUPTI
      // Before any engine: CUPTI is loaded before the decode graphs are captured.
      profiler = std::make_unique<qwenvl::tools::GpuActivity>(cuda_index(device));
#else
      std::cerr << "qwenvl-bench: --idle-profile 1 needs CUPTI, and this build has none (meson found no cupti.h "
                   "with libcupti, or no CUDA; see tools/meson.build)\n";
      return 1;
#endif
    }
    for (int batch : batches) {
      qwenvl::EngineOptions options;
      options.model_dir = model_dir;
      options.device = device;
      options.devices = g_devices;
      options.placement = g_placement;
      options.dtype = "auto";  // bf16 on CUDA
      options.max_batch = batch;
      options.max_context = max_context;  // the prompt (~300 tokens) + 32: sizes the KV pool to the work
      options.cuda_graphs = cuda_graphs;
      options.time_phases = phases;
      options.overlap_decode = overlap_decode;
      options.prefill_tokens_per_step = g_prefill_tokens_per_step;
      options.encode_group = g_encode_group;
      auto engine = qwenvl::Engine::create(options);
      run_once(*engine, batch, rgb, size, new_tokens);  // warm-up
      std::vector<double> latencies, ttfts;
      const qwenvl::EngineStats before = engine->stats();
      Row row;
      for (int r = 0; r < runs; ++r) {
        const RunTimes t = run_once(*engine, batch, rgb, size, new_tokens);
        latencies.push_back(t.latency_ms);
        ttfts.push_back(t.ttft_ms);
        row.prompt_tokens = t.prompt_tokens;
      }
      const qwenvl::EngineStats after = engine->stats();
      row.batch = batch;
      row.latency_ms = median(latencies);
      row.ttft_ms = median(ttfts);
      row.decode_tokens_per_s = batch * (new_tokens - 1) / ((row.latency_ms - row.ttft_ms) / 1000.0);
      row.frames_per_s = batch / (row.latency_ms / 1000.0);
      row.vision_ms = (after.vision_ms - before.vision_ms) / runs;
      row.prefill_ms = (after.prefill_ms - before.prefill_ms) / runs;
      row.decode_ms = (after.decode_ms - before.decode_ms) / runs;
      row.host = after.decode_host - before.decode_host;
      graphs_used = engine->stats().decode_graphs;
      row.peak_gib = static_cast<double>(engine->stats().peak_device_memory_bytes) / (1024.0 * 1024.0 * 1024.0);
      rows.push_back(row);
      std::fprintf(stderr, "B=%d latency %.1f ms ttft %.1f ms peak %.2f GiB\n", batch, row.latency_ms, row.ttft_ms,
                   row.peak_gib);
#ifdef QWENVL_WITH_CUPTI
      if (profiler) {
        IdleRow idle;
        idle.batch = batch;
        const uint64_t steps_before = engine->stats().decode_forwards;
        profiler->start();
        idle.run_ms = run_once(*engine, batch, rgb, size, new_tokens).latency_ms;
        profiler->stop();
        idle.engine_decode_steps = engine->stats().decode_forwards - steps_before;
        const auto& records = profiler->records();
        idle.decode = qwenvl::tools::summarize_decode(records, patterns);
        size_t kernels = 0;
        for (const auto& r : records) kernels += r.kind == qwenvl::tools::ActivityKind::kKernel;
        const auto& d = idle.decode;
        std::fprintf(stderr,
                     "B=%d idle profile: %zu records (%zu kernels) in %zu buffers, %zu dropped, %zu untimed, %zu of "
                     "other kinds; decode kernels (name contains \"%s\"): %zu, %zu outside graphs; graph launches "
                     "with decode kernels: %zu; engine decode steps: %llu; admission kernels in the window: %zu\n",
                     batch, records.size(), kernels, profiler->buffers(), profiler->dropped(), profiler->untimed(),
                     profiler->other_records(), patterns.decode.c_str(), d.decode_kernels, d.eager_decode_kernels,
                     d.steps.size(), static_cast<unsigned long long>(idle.engine_decode_steps),
                     d.admission_kernels_in_window);
        if (!d.found()) {
          std::fprintf(stderr, "B=%d idle profile: no decode kernel in the trace; its kernels were:\n", batch);
          for (const std::string& name : qwenvl::tools::most_frequent_kernels(records, 15))
            std::fprintf(stderr, "  %s\n", name.c_str());
        }
        idle_rows.push_back(idle);
      }
#endif
    }
  } catch (const std::exception& e) {
    std::cerr << "qwenvl-bench: " << e.what() << "\n";
    return 1;
  }

  std::printf("qwenvl caption benchmark (%s; device %s, dtype auto: bf16 on cuda; decode graphs %s), %s\ncommand: %s\n\n",
              model_dir.c_str(), device.c_str(), graphs_used ? "on" : "off", utc_now().c_str(), command.c_str());
  std::printf("| batch | latency ms | TTFT ms (median) | decode tok/s | frames/s | peak GiB |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows)
    std::printf("| %d | %.1f | %.1f | %.1f | %.2f | %.2f |\n", r.batch, r.latency_ms, r.ttft_ms, r.decode_tokens_per_s,
                r.frames_per_s, r.peak_gib);
  std::printf("\nThe inference thread's decode step by part (µs a step, mean over the timed runs; clock reads only, "
              "no synchronisation: `wait` is device time the host did not cover, prefills queued between steps "
              "included; a steady step is one with no prefill since the step before):\n\n");
  std::printf("| batch | steps | mask fill | launch | wait | grammar accept | tokens | step | steady steps | steady step |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const qwenvl::DecodeHostTimes& h = r.host;
    const double step_ms = h.mask_fill_ms + h.launch_ms + h.wait_ms + h.grammar_accept_ms + h.tokens_ms;
    std::printf("| %d | %llu | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %llu | %.1f |\n", r.batch,
                static_cast<unsigned long long>(h.steps), per_step_us(h.mask_fill_ms, h.steps),
                per_step_us(h.launch_ms, h.steps), per_step_us(h.wait_ms, h.steps),
                per_step_us(h.grammar_accept_ms, h.steps), per_step_us(h.tokens_ms, h.steps),
                per_step_us(step_ms, h.steps), static_cast<unsigned long long>(h.steady_steps),
                per_step_us(h.steady_ms, h.steady_steps));
  }
  if (phases) {
    std::printf("\nWhere a run's time goes (mean per run; the device synchronised after each phase):\n\n");
    std::printf("| batch | vision ms | prefill ms | decode ms | other (host, preparation, sampling) ms |\n");
    std::printf("|---:|---:|---:|---:|---:|\n");
    for (const Row& r : rows)
      std::printf("| %d | %.1f | %.1f | %.1f | %.1f |\n", r.batch, r.vision_ms, r.prefill_ms, r.decode_ms,
                  r.latency_ms - r.vision_ms - r.prefill_ms - r.decode_ms);
  }
  if (idle_profile) {
    std::printf("\nGPU idle during decode (CUPTI activity trace of one more run per batch size: kernels, copies and "
                "sets on every stream). Window: from the first decode step's first GPU activity to the last decode "
                "step's last (a step = one graph launch holding a kernel whose name contains \"%s\"; without graphs, "
                "first to last such kernel). Busy = union of all activity in the window, prefills of requests admitted "
                "between steps included. Steady cycles: step start to next step start, with no vision, prefill or frame "
                "preparation kernel in them.\n\n",
                patterns.decode.c_str());
    std::printf("| batch | decode steps | decode window ms | GPU busy ms | idle %% | per step µs | steady cycles | "
                "steady idle %% | steady step µs | profiled run ms |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const IdleRow& r : idle_rows) {
      const auto& d = r.decode;
      // Graph launches count the steps; without graphs the engine's own count does.
      const size_t steps = d.steps.empty() ? static_cast<size_t>(r.engine_decode_steps) : d.steps.size();
      const double window_ms = (d.window.end_ns - d.window.start_ns) / 1e6;
      std::printf("| %d | %zu | %.2f | %.2f | %.2f | %.1f | %zu | %.2f | %.1f | %.1f |\n", r.batch, steps, window_ms,
                  d.busy_ns / 1e6, 100.0 * d.idle_fraction, steps ? window_ms * 1e3 / steps : 0.0, d.steady_cycles,
                  100.0 * d.steady_idle_fraction, d.steady_cycles ? d.steady_ns / 1e3 / d.steady_cycles : 0.0,
                  r.run_ms);
    }
    std::printf("\nWhere the steady cycles' idle time falls: inside a step (between the kernels of one graph "
                "launch) or between steps (sampling, the host's turn, the next launch); per cycle.\n\n");
    std::printf("| batch | idle inside a step µs | idle between steps µs |\n|---:|---:|---:|\n");
    for (const IdleRow& r : idle_rows) {
      const auto& d = r.decode;
      const double n = d.steady_cycles ? static_cast<double>(d.steady_cycles) : 1.0;
      std::printf("| %d | %.1f | %.1f |\n", r.batch, d.steady_idle_in_steps_ns / 1e3 / n,
                  d.steady_idle_between_steps_ns / 1e3 / n);
    }
    // The 12 largest of a by-name table, per steady cycle.
    const auto print_by_name = [](const std::vector<std::pair<std::string, uint64_t>>& totals, size_t cycles) {
      std::printf("| activity | µs per cycle |\n|---|---:|\n");
      for (size_t i = 0; i < totals.size() && i < 12; ++i) {
        std::string name = totals[i].first;
        if (name.size() > 100) name = name.substr(0, 97) + "...";
        for (char& c : name)
          if (c == '|') c = '/';  // keeps the markdown table whole
        std::printf("| %s | %.1f |\n", name.c_str(), totals[i].second / 1e3 / cycles);
      }
    };
    for (const IdleRow& r : idle_rows) {
      const auto& d = r.decode;
      if (d.steady_cycles == 0) continue;
      std::printf("\nBatch %d: GPU time per kernel in a steady cycle (µs per cycle, the 12 largest):\n\n", r.batch);
      print_by_name(d.steady_kernel_ns, d.steady_cycles);
      std::printf("\nBatch %d: idle inside a step by the activity that ends the gap (µs per cycle, the 12 largest; "
                  "%.1f activities per step):\n\n", r.batch, d.steady_activities_per_step);
      print_by_name(d.steady_idle_before_ns, d.steady_cycles);
    }
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      out << (i ? ",\n" : "\n") << "{\"batch\": " << r.batch << ", \"latency_ms\": " << r.latency_ms
          << ", \"ttft_ms\": " << r.ttft_ms << ", \"decode_tokens_per_s\": " << r.decode_tokens_per_s
          << ", \"frames_per_s\": " << r.frames_per_s << ", \"peak_gib\": " << r.peak_gib
          << ", \"prompt_tokens\": " << r.prompt_tokens << ", \"new_tokens\": " << new_tokens
          << ", \"vision_ms\": " << r.vision_ms << ", \"prefill_ms\": " << r.prefill_ms
          << ", \"decode_ms\": " << r.decode_ms << ", \"decode_steps\": " << r.host.steps
          << ", \"step_fill_us\": " << per_step_us(r.host.mask_fill_ms, r.host.steps)
          << ", \"step_launch_us\": " << per_step_us(r.host.launch_ms, r.host.steps)
          << ", \"step_wait_us\": " << per_step_us(r.host.wait_ms, r.host.steps)
          << ", \"step_grammar_us\": " << per_step_us(r.host.grammar_accept_ms, r.host.steps)
          << ", \"step_tokens_us\": " << per_step_us(r.host.tokens_ms, r.host.steps)
          << ", \"steady_steps\": " << r.host.steady_steps
          << ", \"steady_step_us\": " << per_step_us(r.host.steady_ms, r.host.steady_steps) << "}";
    }
    out << "\n]\n";
  }
  return 0;
}
