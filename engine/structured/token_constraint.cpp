#include "structured/token_constraint.h"

#include <dlpack/dlpack.h>
#include <xgrammar/xgrammar.h>

#include <mutex>
#include <optional>

#include "qwenvl/error.h"
#include "structured/constraint_grammar.h"
#include "structured/number_bounds.h"
#include "structured/schema_features.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::structured {

namespace {

class XgrammarConstraint : public TokenConstraint {
 public:
  XgrammarConstraint(const xgrammar::CompiledGrammar& grammar, const std::vector<int64_t>& stop_ids, int64_t vocab)
      : matcher_(grammar, std::vector<int>(stop_ids.begin(), stop_ids.end())), vocab_(vocab) {}

  void fill_mask(int32_t* words) override {
    int64_t shape[1] = {mask_words(vocab_)};
    DLTensor t{};
    t.data = words;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = 1;
    t.dtype = xgrammar::GetBitmaskDLType();
    t.shape = shape;
    matcher_.FillNextTokenBitmask(&t, 0);
  }
  bool accept(int32_t token) override { return matcher_.AcceptToken(token); }
  bool complete() const override { return matcher_.IsTerminated(); }

 private:
  xgrammar::GrammarMatcher matcher_;
  int64_t vocab_;
};

}  // namespace

bool check_constraint_request(const SamplingParams& params) {
  if (params.json_schema.empty() && params.choices.empty()) return false;
  if (!params.json_schema.empty() && !params.choices.empty())
    throw Error("a request sets both json_schema and choices: one constraint at a time");
  for (const auto& choice : params.choices)
    if (choice.empty()) throw Error("choices: an empty choice cannot be told from no answer");
  if (params.ignore_eos) throw Error("ignore_eos cannot be combined with json_schema or choices (EOS ends the document)");
  if (!params.json_schema.empty()) check_schema_features(params.json_schema);
  return true;
}

int64_t mask_words(int64_t vocab_size) { return xgrammar::GetBitmaskSize(static_cast<int>(vocab_size)); }

struct ConstraintCompiler::Impl {
  const model::Tokenizer& tokenizer;
  int64_t width;
  std::once_flag built;
  std::optional<xgrammar::GrammarCompiler> compiler;

  xgrammar::GrammarCompiler& get() {
    std::call_once(built, [&] {
      // Every id's bytes as the decoder produces them (special tokens empty: never allowed).
      std::vector<std::string> vocab(static_cast<size_t>(tokenizer.vocab_size()));
      for (size_t id = 0; id < vocab.size(); ++id)
        if (!tokenizer.is_special(static_cast<int32_t>(id)))
          tokenizer.append_token_bytes(static_cast<int32_t>(id), /*skip_special_tokens=*/false, vocab[id]);
      xgrammar::TokenizerInfo info(vocab, xgrammar::VocabType::RAW, static_cast<int>(width));
      compiler.emplace(info);  // xgrammar's defaults: 8 threads, a cache of compiled grammars
    });
    return *compiler;
  }
};

ConstraintCompiler::ConstraintCompiler(const model::Tokenizer& tokenizer, int64_t logits_width)
    : impl_(new Impl{tokenizer, std::max(logits_width, tokenizer.vocab_size()), {}, {}}) {}
ConstraintCompiler::~ConstraintCompiler() = default;

std::unique_ptr<TokenConstraint> ConstraintCompiler::compile(const SamplingParams& params,
                                                            const std::vector<int64_t>& stop_ids) {
  if (!check_constraint_request(params)) return nullptr;
  xgrammar::GrammarCompiler& compiler = impl_->get();
  try {
    const xgrammar::CompiledGrammar grammar =
        params.json_schema.empty()
            ? compiler.CompileGrammar(choices_grammar(params.choices))
            : compiler.CompileJSONSchema(bound_number_ranges(params.json_schema), kAnyWhitespace,
                                         /*indent=*/std::nullopt, json_separators(), kStrictMode);
    return std::make_unique<XgrammarConstraint>(grammar, stop_ids, impl_->width);
  } catch (const std::exception& e) {
    throw Error(std::string(params.json_schema.empty() ? "choices" : "json_schema") + ": " + xgrammar_reason(e.what()));
  }
}

}  // namespace qwenvl::structured
