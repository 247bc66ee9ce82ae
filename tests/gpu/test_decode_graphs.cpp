// Decode steps replayed as CUDA graphs (runtime/decode_graphs.h) against the same steps run eagerly,
// bf16 at the real 3B width (4 language and 4 vision layers; scripts/device/make_real_width_models.py):
// three prompts of different lengths in scattered KV blocks, teacher-forced, one sequence leaving
// midway so the step moves to a smaller bucket, padding rows in every bucket. The graph path must
// give the eager path's logits (to bf16 rounding of GEMMs of another height) and transformers' fp32
// argmax as often, launch no kernel from the host per step (the dispatch counters stay still while
// the decode counter counts every replay), and through the engine answer what the eager engine does.
//   QWENVL_REAL_WIDTH_MODELS=<dir holding 3b/>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "../nn/network_reference.h"
#include "gpu_test_util.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "nn/kv_cache.h"
#include "nn/qwen2_5_vl.h"
#include "qwenvl/engine.h"
#include "runtime/model_runner.h"

namespace qwenvl {
namespace {

constexpr int64_t kSteps = 12;
constexpr int64_t kLeaveAfter = 5;  // the shortest sequence stops after this many steps
constexpr double kGraphVsEager = 2e-2;

std::filesystem::path model_dir() {
  const char* dir = std::getenv("QWENVL_REAL_WIDTH_MODELS");
  return dir != nullptr ? std::filesystem::path(dir) / "3b" : std::filesystem::path();
}

double norm_error(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.to(at::kDouble), y = b.to(at::kDouble);
  return (x - y).norm().item<double>() / std::max(y.norm().item<double>(), 1e-30);
}

struct Reference {
  std::map<std::string, at::Tensor> t;
  runtime::PreparedPrompt image_prompt;
  std::vector<int64_t> forced;
};

Reference load_reference(const std::filesystem::path& dir) {
  Reference r;
  auto file = model::SafetensorsFile::open(dir / "reference.safetensors");
  for (const auto& e : file->tensors()) r.t[e.name] = file->tensor(e).clone();
  const auto ids = r.t.at("input_ids").to(at::kLong).contiguous();
  r.image_prompt.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  const auto types = r.t.at("mm_token_type_ids").to(at::kLong).contiguous();
  for (int64_t i = 0; i < types.numel(); ++i)
    r.image_prompt.token_types.push_back(static_cast<uint8_t>(types.data_ptr<int64_t>()[i]));
  r.image_prompt.image_pixels = r.t.at("pixel_values");
  r.image_prompt.image_grids = test::grids_of(r.t.at("image_grid_thw"));
  const auto forced = r.t.at("forced_ids").to(at::kLong).contiguous();
  r.forced.assign(forced.data_ptr<int64_t>(), forced.data_ptr<int64_t>() + forced.numel());
  return r;
}

// A text-only prompt: the first n text ids of the reference prompt (its image pads left out).
runtime::PreparedPrompt text_prompt(const Reference& r, size_t n) {
  runtime::PreparedPrompt p;
  for (size_t i = 0; i < r.image_prompt.ids.size() && p.ids.size() < n; ++i)
    if (r.image_prompt.token_types[i] == 0) p.ids.push_back(r.image_prompt.ids[i]);
  p.token_types.assign(p.ids.size(), 0);
  return p;
}

struct DecodeRun {
  std::vector<std::vector<at::Tensor>> logits;  // [sequence][step] fp32 on the CPU
  kernels::DispatchCounts decode_calls;
  int64_t decode_forwards = 0;
};

DecodeRun run_steps(nn::Qwen25VL& net, const model::ModelConfig& config, const Reference& r, bool graphs) {
  const at::Device gpu(at::kCUDA, 0);
  const auto& text = config.text;
  nn::KvCache cache({text.num_hidden_layers, 96, 16, text.num_key_value_heads, text.head_dim()}, at::kBFloat16, gpu);
  runtime::ModelRunner runner(net, cache);
  if (graphs) {
    EXPECT_TRUE(runner.enable_decode_graphs(/*max_batch=*/4, /*max_context=*/512));
  }
  EXPECT_EQ(runner.decode_graphs_enabled(), graphs);

  std::vector<runtime::PreparedPrompt> prompts{r.image_prompt, text_prompt(r, 23), text_prompt(r, 9)};
  std::vector<runtime::SequenceSlot> slots(prompts.size());
  for (int32_t b = 95, i = 0; b >= 0; --b, ++i) slots[i % 3].blocks.push_back(b);  // interleaved, descending
  std::vector<const runtime::PreparedPrompt*> prompt_ptrs;
  std::vector<runtime::SequenceSlot*> slot_ptrs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    prompt_ptrs.push_back(&prompts[i]);
    slot_ptrs.push_back(&slots[i]);
  }
  DecodeRun out;
  out.logits.resize(prompts.size());
  const at::Tensor first = runner.prefill_on_device(prompt_ptrs, slot_ptrs).to(at::kCPU);
  for (size_t i = 0; i < prompts.size(); ++i) out.logits[i].push_back(first[static_cast<int64_t>(i)]);

  const auto calls_before = kernels::dispatch_counts();
  const int64_t forwards_before = net.counters().decode;
  for (int64_t step = 0; step < kSteps; ++step) {
    std::vector<int64_t> tokens;
    std::vector<runtime::SequenceSlot*> live;
    std::vector<size_t> rows;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (i == 2 && step >= kLeaveAfter) continue;
      tokens.push_back(r.forced[step]);
      live.push_back(&slots[i]);
      rows.push_back(i);
    }
    const at::Tensor logits = runner.decode_on_device(tokens, live).to(at::kCPU);
    EXPECT_EQ(logits.size(0), static_cast<int64_t>(rows.size()));
    for (size_t row = 0; row < rows.size(); ++row) out.logits[rows[row]].push_back(logits[static_cast<int64_t>(row)]);
  }
  out.decode_calls = kernels::dispatch_counts().since(calls_before);
  out.decode_forwards = net.counters().decode - forwards_before;
  return out;
}

class DecodeGraphs : public ::testing::Test {
 protected:
  void SetUp() override {
    QWENVL_SKIP_WITHOUT_GPU();
    ASSERT_FALSE(model_dir().empty()) << "set QWENVL_REAL_WIDTH_MODELS (scripts/device/make_real_width_models.py)";
    rgb_.resize(333 * 251 * 3);
    for (size_t i = 0; i < rgb_.size(); ++i) rgb_[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  }
  // An engine on the GPU for the engine-level tests: up to 4 sequences of 1024 tokens.
  EngineOptions cuda_options() const {
    EngineOptions o;
    o.model_dir = model_dir().string();
    o.device = "cuda";
    o.max_batch = 4;
    o.max_context = 1024;
    return o;
  }
  // A question about the test's 333x251 picture (pseudo-random pixels).
  Request picture_request(const std::string& prompt) const {
    Request request;
    request.images.push_back(FrameView::packed(PixelFormat::kRGB, 333, 251, rgb_.data()));
    request.prompt = prompt;
    return request;
  }
  std::vector<uint8_t> rgb_;
};

TEST_F(DecodeGraphs, ReplayGivesTheEagerLogitsWithoutHostLaunches) {
  const auto dir = model_dir();
  const Reference r = load_reference(dir);
  auto files = model::load_model_files(dir);
  model::WeightLoadOptions options;
  options.dtype = at::kBFloat16;
  auto weights = model::Weights::load(dir, files.model, options);
  nn::Qwen25VL net(files.model, weights, at::kBFloat16, at::Device(at::kCUDA, 0));

  const DecodeRun eager = run_steps(net, files.model, r, /*graphs=*/false);
  const DecodeRun graph = run_steps(net, files.model, r, /*graphs=*/true);
  const at::Tensor f32 = r.t.at("logits_fp32");
  double worst = 0;
  int64_t eager_agree = 0, graph_agree = 0;
  for (size_t i = 0; i < eager.logits.size(); ++i) {
    ASSERT_EQ(eager.logits[i].size(), graph.logits[i].size()) << "sequence " << i;
    for (size_t s = 1; s < eager.logits[i].size(); ++s) {  // decode steps (0 is the shared prefill)
      ASSERT_FALSE(at::isnan(graph.logits[i][s]).any().item<bool>()) << "sequence " << i << " step " << s;
      const double e = norm_error(graph.logits[i][s], eager.logits[i][s]);
      worst = std::max(worst, e);
      EXPECT_LT(e, kGraphVsEager) << "sequence " << i << " step " << s;
    }
  }
  // The image prompt is transformers' reference prompt fed the forced ids: argmax against fp32.
  for (int64_t s = 1; s <= kSteps; ++s) {
    const int64_t want = f32[s].argmax().item<int64_t>();
    eager_agree += eager.logits[0][s].argmax().item<int64_t>() == want;
    graph_agree += graph.logits[0][s].argmax().item<int64_t>() == want;
  }
  std::printf("decode graphs vs eager (bf16, 3B width, 3 sequences then 2): worst relative logits difference %.3g; "
              "argmax equal to transformers fp32 on %lld/%lld steps (eager %lld)\n",
              worst, static_cast<long long>(graph_agree), static_cast<long long>(kSteps),
              static_cast<long long>(eager_agree));
  EXPECT_GE(graph_agree, eager_agree - 1);

  // Eager steps dispatch every layer's kernels from the host; replayed steps none, yet each counts.
  const uint64_t layers = static_cast<uint64_t>(files.model.text.num_hidden_layers);
  EXPECT_EQ(eager.decode_calls(kernels::KernelOp::kAttention, kernels::DispatchPath::kCudaKernel), kSteps * layers);
  for (int op = 0; op < kernels::kNumKernelOps; ++op)
    for (auto path : {kernels::DispatchPath::kCudaKernel, kernels::DispatchPath::kReferenceOnCuda,
                      kernels::DispatchPath::kCpuReference})
      EXPECT_EQ(graph.decode_calls(kernels::KernelOp(op), path), 0u)
          << kernels::kernel_op_name(kernels::KernelOp(op)) << " was launched from the host during replayed steps";
  EXPECT_EQ(eager.decode_forwards, kSteps);
  EXPECT_EQ(graph.decode_forwards, kSteps);
}

// The engine with graphs (the default on CUDA) answers what the engine without them answers.
TEST_F(DecodeGraphs, EngineAnswersAsWithoutGraphs) {
  std::vector<std::vector<int32_t>> ids;
  for (bool graphs : {false, true}) {
    EngineOptions o = cuda_options();
    o.cuda_graphs = graphs;
    auto engine = Engine::create(o);
    EXPECT_EQ(engine->stats().decode_graphs, graphs);
    Request request = picture_request("Describe this image.");
    request.sampling.max_new_tokens = 16;
    request.sampling.ignore_eos = true;
    request.sampling.temperature = 0.0;
    request.sampling.repetition_penalty = 1.0;
    const Result result = engine->submit(std::move(request)).result.get();
    ASSERT_EQ(result.status, Status::kAnswered) << result.error;
    EXPECT_EQ(result.token_ids.size(), 16u);
    EXPECT_EQ(engine->stats().decode_forwards, 15u);
    EXPECT_EQ(engine->stats().decode_rows, 15u);  // graph replays count their rows as eager steps do
    ids.push_back(result.token_ids);
  }
  EXPECT_EQ(ids[1], ids[0]);
}

// EngineOptions::overlap_decode (the next step queued before the host reads the picked ids, rows of
// stopped sequences dropped after) answers what the engine without it answers, with graphs, for
// requests ending at different steps in one batch, one of them sampled with a repetition penalty.
TEST_F(DecodeGraphs, OverlappedStepsAnswerAsWithout) {
  const int limits[] = {16, 5, 1, 9};
  std::vector<std::vector<std::vector<int32_t>>> answers;
  for (bool overlap : {false, true}) {
    EngineOptions o = cuda_options();
    o.overlap_decode = overlap;
    auto engine = Engine::create(o);
    EXPECT_TRUE(engine->stats().decode_graphs);
    std::vector<std::future<Result>> futures;
    for (size_t i = 0; i < std::size(limits); ++i) {
      Request request = picture_request(i % 2 ? "Describe this image." : "What is in the picture?");
      request.sampling.max_new_tokens = limits[i];
      request.sampling.ignore_eos = true;
      request.sampling.temperature = i == 3 ? 0.8 : 0.0;
      request.sampling.seed = 5;
      request.sampling.repetition_penalty = i == 3 ? 1.2 : 1.0;
      futures.push_back(engine->submit(std::move(request)).result);
    }
    answers.emplace_back();
    for (size_t i = 0; i < futures.size(); ++i) {
      const Result r = futures[i].get();
      ASSERT_EQ(r.status, Status::kAnswered) << r.error;
      EXPECT_EQ(r.token_ids.size(), static_cast<size_t>(limits[i]));
      answers.back().push_back(r.token_ids);
    }
  }
  EXPECT_EQ(answers[1], answers[0]);
}

}  // namespace
}  // namespace qwenvl
