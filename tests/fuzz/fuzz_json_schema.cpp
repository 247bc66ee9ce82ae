// libFuzzer harness: a JSON schema as a user sends it (the first part) through the engine's feature
// check and xgrammar's compiler over a Qwen2-style vocabulary, then a walk of the grammar driven by
// the second part's bytes: each step picks one allowed id from the mask and accepts it. The check and
// the compiler either accept or throw qwenvl::Error; the public check without a vocabulary
// (qwenvl/constraint_check.h, what the element runs at start) refuses exactly what the compiler
// refuses, with the same reason; an allowed id is always accepted; a step never allows nothing before
// the document is complete.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "qwenvl/constraint_check.h"
#include "qwenvl/error.h"
#include "structured/token_constraint.h"
#include "tiny_tokenizer.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const fuzz::TempDir dir;
  static const model::Tokenizer tokenizer =
      model::Tokenizer::from_file(dir.write("tokenizer.json", fuzz::tiny_qwen2_tokenizer_json()));
  static const int32_t eos = static_cast<int32_t>(tokenizer.vocab_size()) - 1;
  static structured::ConstraintCompiler compiler(tokenizer, tokenizer.vocab_size());
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 2);
  SamplingParams params;
  params.json_schema = parts[0];
  if (params.json_schema.empty()) return 0;
  std::unique_ptr<structured::TokenConstraint> constraint;
  const std::string checked = constraint_error(params);
  try {
    constraint = compiler.compile(params, {eos});
  } catch (const Error& e) {
    fuzz::require(checked == e.what(), "the check said '" + checked + "' where the compiler refused: " + e.what());
    return 0;  // refused with the reason
  }
  fuzz::require(checked.empty(), "the check refused what the compiler accepts: " + checked);
  fuzz::require(constraint != nullptr, "a schema gave no constraint");
  const std::string walk = parts.size() > 1 ? parts[1] : std::string();
  std::vector<int32_t> words(static_cast<size_t>(structured::mask_words(tokenizer.vocab_size())));
  for (size_t step = 0; step < walk.size() && !constraint->complete(); ++step) {
    constraint->fill_mask(words.data());
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < tokenizer.vocab_size(); ++id)
      if (words[static_cast<size_t>(id / 32)] >> (id % 32) & 1) allowed.push_back(id);
    fuzz::require(!allowed.empty(), "no token allowed before the document is complete");
    const int32_t id = allowed[static_cast<uint8_t>(walk[step]) % allowed.size()];
    fuzz::require(constraint->accept(id), "the grammar refused an id its mask allowed: " + std::to_string(id));
  }
  return 0;
}
