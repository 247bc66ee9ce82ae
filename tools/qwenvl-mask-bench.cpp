// qwenvl-mask-bench: what a constrained decode step's token masks cost, alone (issue 17, item 4): for
// each batch size B, B rows constrained by one JSON schema walk through their documents together (each
// step a random logits row per sequence, masked, its argmax accepted), and per step the table gives
// the host's fill of the B masks (runtime/token_masks.h, row-parallel on libtorch's inter-op pool),
// the grammars' accepting of the picked tokens (row-parallel the same way), the apply (one copy of
// the block to the device and kernels::apply_token_bitmask), and beside it the former apply (the
// bits unpacked to a bool tensor with libtorch ops, then masked_fill / index_put).
// Medians over the steps after a warm-up; apply is timed to the device's end (synchronised).
//
//   qwenvl-mask-bench MODEL_DIR [--device cpu|cuda] [--batches 1,64] [--steps 64] [--warmup 4]
//                    [--width 151936] [--json-schema SCHEMA]
// MODEL_DIR: any directory with the model's tokenizer.json (the tiny-a fixture has Qwen2's real one).
// The default schema is scripts/bench/structured_bench.sh's: an object holding 50 strings of at most
// 40 characters (structural and string states, as a real answer walks them).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/device/sync.h"
#include "number_list.h"
#include "qwenvl/error.h"
#include "runtime/host_upload.h"
#include "runtime/parallel_rows.h"
#include "runtime/token_masks.h"
#include "structured/token_constraint.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;
using qwenvl::structured::TokenConstraint;

const char* const kSchema =
    R"({"type":"object","properties":{"labels":{"type":"array","items":{"type":"string","maxLength":40},"minItems":50,"maxItems":50}},"required":["labels"],"additionalProperties":false})";

struct Options {
  std::string model, device = "cpu", schema = kSchema;
  std::vector<int64_t> batches{1, 64};
  int steps = 64, warmup = 4;
  int64_t width = 151936;  // Qwen2.5-VL's logits width (config.json vocab_size)
};

double micros(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The former apply (engine/runtime/sampling.cpp before the kernel): the block's masks sent, unpacked
// with libtorch ops, the forbidden ids of the constrained rows set to -inf.
void former_apply(at::Tensor& logits, const qwenvl::runtime::TokenMasks& masks) {
  const at::Tensor block = qwenvl::runtime::upload(masks.block, logits.device());
  const int64_t n = masks.rows, words = masks.words, vocab = logits.size(1);
  const at::Tensor bits = block.narrow(0, 0, n * words).view({n, words});
  const at::Tensor index = block.narrow(0, n * words, n).to(at::kLong);
  const at::Tensor shifts = at::arange(32, bits.options());
  const at::Tensor forbidden =
      at::bitwise_and(at::bitwise_right_shift(bits.unsqueeze(-1), shifts), 1).view({n, words * 32}).narrow(1, 0, vocab).eq(0);
  logits.index_put_({index}, logits.index_select(0, index).masked_fill(forbidden, -std::numeric_limits<float>::infinity()));
}

struct Row {
  double fill_us, accept_us, apply_us, former_us;
  int64_t completed;
};

Row run_batch(const Options& o, qwenvl::structured::ConstraintCompiler& compiler, const std::vector<int64_t>& stops,
              int64_t batch) {
  const at::Device device(o.device);
  qwenvl::SamplingParams params;
  params.json_schema = o.schema;
  std::vector<std::unique_ptr<TokenConstraint>> owned;
  std::vector<TokenConstraint*> rows;
  for (int64_t i = 0; i < batch; ++i) {
    owned.push_back(compiler.compile(params, stops));
    rows.push_back(owned.back().get());
  }
  const at::Tensor base = at::randn({batch, o.width}).to(device);
  std::vector<double> fill, accept, apply, former;
  int64_t completed = 0;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    at::Tensor logits = base.roll(step * 7919, 1).contiguous();  // a different row each step
    at::Tensor again = logits.clone();
    qwenvl::kernels::synchronize_device(device);
    const auto t0 = Clock::now();
    const qwenvl::runtime::TokenMasks masks = qwenvl::runtime::fill_token_masks(rows, o.width, device.is_cuda());
    const auto t1 = Clock::now();
    qwenvl::runtime::apply_token_masks(logits, masks);
    qwenvl::kernels::synchronize_device(device);
    const auto t2 = Clock::now();
    former_apply(again, masks);
    qwenvl::kernels::synchronize_device(device);
    const auto t3 = Clock::now();
    if (!at::equal(logits, again)) throw qwenvl::Error("the kernel's mask differs from the former apply's");
    if (step >= o.warmup) {
      fill.push_back(micros(t0, t1));
      apply.push_back(micros(t1, t2));
      former.push_back(micros(t2, t3));
    }
    const at::Tensor picked = logits.argmax(1).cpu().contiguous();
    const std::vector<int64_t> tokens(picked.data_ptr<int64_t>(), picked.data_ptr<int64_t>() + batch);
    const auto t4 = Clock::now();
    qwenvl::runtime::accept_constrained_tokens(rows, tokens);  // throws if a grammar refuses its masked argmax
    if (step >= o.warmup) accept.push_back(micros(t4, Clock::now()));
    for (int64_t i = 0; i < batch; ++i) {
      if (rows[i]->complete()) {  // a finished document: a fresh one in its place
        ++completed;
        owned[i] = compiler.compile(params, stops);
        rows[i] = owned[i].get();
      }
    }
  }
  return {median(fill), median(accept), median(apply), median(former), completed};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* usage =
      "usage: qwenvl-mask-bench MODEL_DIR [--device cpu|cuda] [--batches 1,64] [--steps 64] [--warmup 4] "
      "[--width 151936] [--json-schema SCHEMA]\n";
  if (argc < 2) {
    std::fputs(usage, stderr);
    return 2;
  }
  o.model = argv[1];
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fputs(usage, stderr);
      return 2;
    }
    const std::string value = argv[i + 1];
    if (flag == "--device") o.device = value;
    else if (flag == "--batches") o.batches = qwenvl::tools::parse_number_list<int64_t>(value);
    else if (flag == "--steps") o.steps = std::max(1, std::stoi(value));
    else if (flag == "--warmup") o.warmup = std::max(0, std::stoi(value));
    else if (flag == "--width") o.width = std::stoll(value);
    else if (flag == "--json-schema") o.schema = value;
    else {
      std::fprintf(stderr, "qwenvl-mask-bench: unknown option %s\n%s", flag.c_str(), usage);
      return 2;
    }
  }
  try {
    const auto tokenizer = qwenvl::model::Tokenizer::from_model_dir(o.model);
    qwenvl::structured::ConstraintCompiler compiler(tokenizer, o.width);
    std::vector<int64_t> stops;
    for (const char* name : {"<|im_end|>", "<|endoftext|>"})
      if (const auto id = tokenizer.token_to_id(name)) stops.push_back(*id);
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    std::printf("%s, device %s, fill in %lld parts at batch 64 (runtime/parallel_rows.h), logits width %lld (%lld mask words a row), %d steps after %d\n",
                date, o.device.c_str(), static_cast<long long>(qwenvl::runtime::parallel_parts(64)), static_cast<long long>(o.width),
                static_cast<long long>(qwenvl::structured::mask_words(o.width)), o.steps, o.warmup);
    std::printf("Command: %s\n\n", command.c_str());
    std::printf("| batch | fill (µs a step) | accept (µs a step) | apply, kernel (µs a step) | fill + accept + apply (µs a step) | former apply, libtorch ops (µs a step) | documents completed |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const int64_t batch : o.batches) {
      const Row r = run_batch(o, compiler, stops, batch);
      std::printf("| %lld | %.1f | %.1f | %.1f | %.1f | %.1f | %lld |\n", static_cast<long long>(batch), r.fill_us,
                  r.accept_us, r.apply_us, r.fill_us + r.accept_us + r.apply_us, r.former_us,
                  static_cast<long long>(r.completed));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwenvl-mask-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
