// Constrained decoding with xgrammar's C++ core (built from its PyPI source distribution,
// third_party/xgrammar): a request's JSON schema or list of choices becomes a grammar over the
// tokenizer's real vocabulary, and each step the sequence's matcher says which ids may come next,
// as a bitmask (bit i of word i/32 set: id i allowed; ids past the tokenizer's vocabulary, up to the
// logits' width, never). EOS is allowed exactly where the document is complete.
//
// The grammar is pinned: compact JSON (no whitespace, separators "," and ":"), properties in the
// schema's order (xgrammar's strict mode: no property the schema does not name), numbers with at most
// 16 significant digits (number_bounds.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::model {
class Tokenizer;
}

namespace qwenvl::structured {

// Whether a request asks for constrained decoding; throws qwenvl::Error when it asks wrongly
// (both a schema and choices, an empty choice, an unsupported schema feature, ignore_eos).
bool check_constraint_request(const SamplingParams& params);

// int32 words of one row's bitmask for a vocabulary of `vocab_size` ids.
int64_t mask_words(int64_t vocab_size);

// One sequence's place in its grammar.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Writes the allowed ids into `words` (mask_words() of them).
  virtual void fill_mask(int32_t* words) = 0;
  // Moves past `token`; false when the grammar does not allow it (never after fill_mask's choice).
  virtual bool accept(int32_t token) = 0;
  // The answer so far is a whole document (or choice) and ended with EOS.
  virtual bool complete() const = 0;
};

// Compiles requests' constraints against one tokenizer; the vocabulary is read on first use.
class ConstraintCompiler {
 public:
  // `logits_width`: the model's vocabulary size (the logits' last dimension, at least the
  // tokenizer's); `stop_ids`: the ids that end a sequence (EOS).
  ConstraintCompiler(const model::Tokenizer& tokenizer, int64_t logits_width);
  ~ConstraintCompiler();
  // Null when the request is unconstrained; throws qwenvl::Error with xgrammar's reason.
  std::unique_ptr<TokenConstraint> compile(const SamplingParams& params, const std::vector<int64_t>& stop_ids);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwenvl::structured
