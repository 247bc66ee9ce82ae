// pick_tokens() on the CPU: a seeded sequence draws the tokens transformers' generate() draws from
// the same logits (reference/sampling_cases.json: its processors and torch.multinomial on the seeded
// CPU generator); every row of a batch is picked as its own sequence alone would pick it (its
// generator, its seen ids, its settings), whatever shares the batch and in whatever row; the
// repetition penalty acts before the greedy argmax; a seed gives the same draws every time. The
// CUDA path (kernels::sample) is checked against these processors by tests/kernels and in the
// engine by tests/gpu.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "runtime/sampling.h"
#include "test_util.h"

namespace qwenvl::runtime {
namespace {

at::Tensor random_logits(int64_t rows, int64_t vocab, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({rows, vocab}, gen, at::TensorOptions().dtype(at::kFloat)) * 3.0;
}

SamplingConfig sampled(uint64_t seed, double temperature, int64_t top_k, double top_p, std::optional<double> min_p,
                       double penalty) {
  SamplingConfig c;
  c.do_sample = true;
  c.seed = seed;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  c.min_p = min_p;
  c.repetition_penalty = penalty;
  return c;
}

std::vector<int64_t> ids_of(const at::Tensor& tokens) {
  EXPECT_EQ(tokens.scalar_type(), at::kLong);
  EXPECT_TRUE(tokens.device().is_cpu());
  return std::vector<int64_t>(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + tokens.numel());
}

TEST(Sampling, SeededCpuDrawsAreTransformers) {
  const nlohmann::json reference =
      nlohmann::json::parse(test::read_text(test::fixtures_dir() / "reference" / "sampling_cases.json"));
  const int64_t vocab = reference.at("vocab").get<int64_t>();
  ASSERT_FALSE(reference.at("cases").empty());
  for (const nlohmann::json& c : reference.at("cases")) {
    SamplingConfig config;
    config.do_sample = c.at("do_sample").get<bool>();
    config.temperature = c.at("temperature").get<double>();
    config.top_k = c.at("top_k").get<int64_t>();
    config.top_p = c.at("top_p").get<double>();
    if (!c.at("min_p").is_null()) config.min_p = c.at("min_p").get<double>();
    config.repetition_penalty = c.at("repetition_penalty").get<double>();
    config.seed = c.at("seed").get<uint64_t>();
    SequenceSampler sampler(config);
    std::vector<int64_t> seen = c.at("prompt_ids").get<std::vector<int64_t>>();
    const auto expected = c.at("tokens").get<std::vector<int64_t>>();
    std::vector<int64_t> picked;
    for (size_t step = 0; step < expected.size(); ++step) {
      const auto values = c.at("logits").at(step).get<std::vector<float>>();
      ASSERT_EQ(static_cast<int64_t>(values.size()), vocab);
      at::Tensor logits = at::tensor(values, at::kFloat).view({1, vocab});
      const std::vector<SamplingRow> rows = {{&sampler, &seen, step}};
      picked.push_back(ids_of(pick_tokens(logits, rows)).at(0));
      seen.push_back(expected[step]);  // as generate() goes on: its own token
    }
    EXPECT_EQ(picked, expected) << "seed " << config.seed << ", do_sample " << config.do_sample << ", top_p "
                                << config.top_p << ", top_k " << config.top_k;
  }
}

TEST(Sampling, BatchRowsPickAsTheirSequenceAlone) {
  SamplingConfig greedy;
  greedy.repetition_penalty = 1.3;
  const std::vector<SamplingConfig> configs = {
      greedy,
      sampled(7, 0.7, 20, 1.0, std::nullopt, 1.0),
      sampled(7, 1.0, 0, 0.8, std::nullopt, 1.0),  // the same seed as the row above, other settings
      sampled(11, 1.2, 50, 1.0, 0.05, 1.1),
  };
  const size_t n = configs.size();
  const int64_t vocab = 500;
  // Three copies of each sequence: picked alone, in a batch in order, in a batch in reverse order.
  std::vector<SequenceSampler> alone, forward, reverse;
  for (const auto& c : configs) {
    alone.emplace_back(c);
    forward.emplace_back(c);
    reverse.emplace_back(c);
  }
  std::vector<std::vector<int64_t>> seen(n, std::vector<int64_t>{3, 4, 5});
  for (uint64_t step = 0; step < 12; ++step) {
    const at::Tensor logits = random_logits(static_cast<int64_t>(n), vocab, 100 + step);
    std::vector<int64_t> expected;
    for (size_t i = 0; i < n; ++i) expected.push_back(alone[i].pick(logits[static_cast<int64_t>(i)].clone(), seen[i]));

    std::vector<SamplingRow> rows;
    for (size_t i = 0; i < n; ++i) rows.push_back({&forward[i], &seen[i], step});
    at::Tensor batch = logits.clone();
    EXPECT_EQ(ids_of(pick_tokens(batch, rows)), expected) << "step " << step;

    std::vector<SamplingRow> reversed;
    at::Tensor reversed_logits = logits.flip({0}).contiguous();
    for (size_t i = n; i-- > 0;) reversed.push_back({&reverse[i], &seen[i], step});
    std::vector<int64_t> picked = ids_of(pick_tokens(reversed_logits, reversed));
    EXPECT_EQ(std::vector<int64_t>(picked.rbegin(), picked.rend()), expected) << "step " << step;

    for (size_t i = 0; i < n; ++i) seen[i].push_back(expected[i]);
  }
}

TEST(Sampling, GreedyTakesTheArgmaxAfterThePenalty) {
  SamplingConfig plain, penalised;
  penalised.repetition_penalty = 2.0;
  SequenceSampler a(plain), b(penalised), c(penalised);
  const std::vector<int64_t> seen_positive{1}, seen_negative{2};
  // Row 0 has no penalty: id 1. Row 1: 3.0 / 2 falls below 2.9. Row 2: -0.5 * 2 falls below -0.6.
  at::Tensor logits = at::tensor({1.0f, 3.0f, 2.9f, -1.0f, 1.0f, 3.0f, 2.9f, -1.0f, -0.9f, -0.6f, -0.5f, -2.0f})
                          .view({3, 4});
  const std::vector<SamplingRow> rows = {{&a, &seen_positive, 0}, {&b, &seen_positive, 0}, {&c, &seen_negative, 0}};
  EXPECT_EQ(ids_of(pick_tokens(logits, rows)), (std::vector<int64_t>{1, 2, 1}));
}

TEST(Sampling, ASeedGivesTheSameDrawsEveryTime) {
  const SamplingConfig five = sampled(5, 1.0, 0, 1.0, std::nullopt, 1.0);
  const SamplingConfig six = sampled(6, 1.0, 0, 1.0, std::nullopt, 1.0);
  SequenceSampler first(five), again(five), other(six);
  const std::vector<int64_t> seen;
  std::vector<int64_t> a, b, c;
  for (uint64_t step = 0; step < 16; ++step) {
    // Nearly flat logits: every draw has hundreds of likely outcomes.
    const at::Tensor logits = random_logits(3, 1000, 200 + step) * 0.01;
    at::Tensor batch = logits.clone();
    const std::vector<int64_t> picked =
        ids_of(pick_tokens(batch, {{&first, &seen, step}, {&again, &seen, step}, {&other, &seen, step}}));
    a.push_back(picked[0]);
    b.push_back(picked[1]);
    c.push_back(picked[2]);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

}  // namespace
}  // namespace qwenvl::runtime
