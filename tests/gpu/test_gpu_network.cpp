// The network on a CUDA device, fp32, on the fixture models: transformers' greedy ids (the same the
// CPU path gives, tests/nn) and its logits for every case alone and for all cases as one batch in
// scattered KV blocks, tokens picked on the GPU by kernels::sample (greedy, and with the repetition
// penalty). Every RMSNorm, rotary and SwiGLU call must be a CUDA kernel call, exactly one per layer;
// attention runs the libtorch reference on the device (no CUDA kernel for fp32 or head_dim 16/32).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>

#include "../nn/network_reference.h"
#include "gpu_test_util.h"
#include "kernels/sampling.h"
#include "model/config.h"
#include "model/weights.h"
#include "nn/kv_cache.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/block_allocator.h"
#include "runtime/model_runner.h"

namespace qwenvl {
namespace {

using test::NetworkCase;
using test::ids_of;
using test::relative_error;
using GpuModel = test::LoadedModel;

GpuModel& load(const std::string& name) { return test::load_fixture_model(name, at::Device(at::kCUDA, 0)); }

constexpr double kTolerance = 1e-4;  // fp32 against fp32, as the CPU parity test
constexpr int64_t kBlockSize = 16;

struct BatchRun {
  std::vector<std::vector<int64_t>> ids;
  std::vector<double> worst_error;
  int64_t vision_forwards = 0, language_forwards = 0;
};

// All `cases` as one batch on the GPU: one prefill, then decode steps until each has as many tokens
// as its reference; tokens chosen on the GPU with the repetition penalty over prompt + generated.
BatchRun run_batch(GpuModel& m, const std::vector<const NetworkCase*>& cases, double penalty,
                   const std::string& reference_ids) {
  const auto& text = m.files.model.text;
  const at::Device gpu(at::kCUDA, 0);
  nn::KvCache cache({text.num_hidden_layers, 512, kBlockSize, text.num_key_value_heads, text.head_dim()},
                         at::kFloat, gpu);
  runtime::BlockAllocator allocator(512);
  {  // churn the free list: sequences get scattered, reused blocks
    std::mt19937 rng(7);
    std::vector<int32_t> taken;
    allocator.allocate(256, taken);
    std::shuffle(taken.begin(), taken.end(), rng);
    allocator.release(taken);
  }
  runtime::ModelRunner runner(*m.net, cache);
  std::vector<runtime::PreparedPrompt> prompts;
  std::vector<runtime::SequenceSlot> slots(cases.size());
  BatchRun out;
  size_t steps = 0;
  bool media = false;
  for (size_t i = 0; i < cases.size(); ++i) {
    prompts.push_back(test::prepared_prompt(*cases[i]));
    media = media || !prompts[i].image_grids.empty() || !prompts[i].video_grids.empty();
    const size_t n_ref = static_cast<size_t>(cases[i]->t.at(reference_ids).numel());
    steps = std::max(steps, n_ref);
    EXPECT_TRUE(allocator.allocate(runner.blocks_for(static_cast<int64_t>(prompts[i].ids.size() + n_ref)),
                                   slots[i].blocks));
  }
  out.ids.resize(cases.size());
  out.worst_error.assign(cases.size(), 0.0);
  std::vector<const runtime::PreparedPrompt*> prompt_ptrs;
  std::vector<runtime::SequenceSlot*> slot_ptrs;
  std::vector<std::vector<int64_t>> seen(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    prompt_ptrs.push_back(&prompts[i]);
    slot_ptrs.push_back(&slots[i]);
    seen[i] = prompts[i].ids;
  }
  out.vision_forwards = media ? 1 : 0;
  at::Tensor logits = runner.prefill_on_device(prompt_ptrs, slot_ptrs);
  out.language_forwards = 1;
  std::vector<size_t> live(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) live[i] = i;
  for (size_t step = 0; step < steps && !live.empty(); ++step) {
    EXPECT_TRUE(logits.is_cuda());
    const at::Tensor host = logits.to(at::kCPU);
    std::vector<kernels::RowSampling> rows;
    std::vector<int64_t> flat, offsets{0};
    for (size_t row = 0; row < live.size(); ++row) {
      const size_t i = live[row];
      const auto& c = *cases[i];
      if (penalty == 1.0 && c.has("greedy_step_logits") &&
          step < static_cast<size_t>(c.t.at("greedy_step_logits").size(0)))
        out.worst_error[i] = std::max(out.worst_error[i], relative_error(host[row], c.t.at("greedy_step_logits")[step]));
      kernels::RowSampling r;
      r.repetition_penalty = penalty;
      rows.push_back(r);
      flat.insert(flat.end(), seen[i].begin(), seen[i].end());
      offsets.push_back(static_cast<int64_t>(flat.size()));
    }
    kernels::SeenIds ids;
    ids.ids = at::tensor(flat, at::kLong).to(logits.device());
    ids.offsets = at::tensor(offsets, at::kLong).to(logits.device());
    const auto tokens = ids_of(kernels::sample(logits, rows, ids).to(at::kCPU));
    std::vector<int64_t> next;
    std::vector<runtime::SequenceSlot*> next_slots;
    std::vector<size_t> next_live;
    for (size_t row = 0; row < live.size(); ++row) {
      const size_t i = live[row];
      out.ids[i].push_back(tokens[row]);
      seen[i].push_back(tokens[row]);
      if (out.ids[i].size() < static_cast<size_t>(cases[i]->t.at(reference_ids).numel())) {
        next.push_back(tokens[row]);
        next_slots.push_back(&slots[i]);
        next_live.push_back(i);
      }
    }
    live = next_live;
    if (!live.empty()) {
      logits = runner.decode_on_device(next, next_slots);
      ++out.language_forwards;
    }
  }
  return out;
}

class GpuNetwork : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { QWENVL_SKIP_WITHOUT_GPU(); }
};

TEST_P(GpuNetwork, GreedyIdsAndLogitsMatchTransformersThroughTheKernels) {
  auto& m = load(GetParam());
  for (const auto& c : test::load_network_cases(GetParam())) {
    const auto before = kernels::dispatch_counts();
    auto run = run_batch(m, {&c}, 1.0, "greedy_ids");
    const auto calls = kernels::dispatch_counts().since(before);
    EXPECT_EQ(run.ids[0], ids_of(c.t.at("greedy_ids"))) << c.name;
    EXPECT_LT(run.worst_error[0], kTolerance) << c.name;
    test::expect_kernel_calls(calls, test::expected_calls(m.files.model, run.vision_forwards, run.language_forwards),
                              /*attention_on_reference=*/true, GetParam() + "/" + c.name);
    EXPECT_EQ(calls(kernels::KernelOp::kSample, kernels::DispatchPath::kCudaKernel), run.ids[0].size()) << c.name;
    std::printf("[%s] %s on the GPU: %zu greedy ids equal, worst logits relative error %.3g\n", GetParam().c_str(),
                c.name.c_str(), run.ids[0].size(), run.worst_error[0]);
  }
}

TEST_P(GpuNetwork, RepetitionPenaltyOnTheGpuAsTransformers) {
  auto& m = load(GetParam());
  for (const auto& c : test::load_network_cases(GetParam())) {
    auto run = run_batch(m, {&c}, 1.3, "penalty_ids");
    EXPECT_EQ(run.ids[0], ids_of(c.t.at("penalty_ids"))) << c.name;
  }
}

TEST_P(GpuNetwork, AllCasesAsOneBatch) {
  auto& m = load(GetParam());
  const auto cases = test::load_network_cases(GetParam());
  std::vector<const NetworkCase*> all;
  for (const auto& c : cases) all.push_back(&c);
  auto run = run_batch(m, all, 1.0, "greedy_ids");
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(run.ids[i], ids_of(cases[i].t.at("greedy_ids"))) << cases[i].name << " in the batch";
    EXPECT_LT(run.worst_error[i], kTolerance) << cases[i].name << " in the batch";
  }
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, GpuNetwork, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

}  // namespace
}  // namespace qwenvl
