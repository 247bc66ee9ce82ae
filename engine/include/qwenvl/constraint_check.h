// Checking a request's constrained-decoding settings (SamplingParams::json_schema, ::choices) without
// an engine or a model: the same checks submit() makes (the supported features, the pinned grammar's
// number bounds, one constraint at a time) and xgrammar's conversion of the schema or the choices to
// its grammar, which the engine otherwise meets only when it compiles the request. For a client
// that wants to refuse a bad setting once, before any request (the GStreamer element at start),
// rather than see every request fail with the reason.
#pragma once

#include <string>

#include "qwenvl/engine.h"

namespace qwenvl {

// Empty when the engine accepts `params`' constraint (or it has none); else the reason, as a failed
// request would give it ("json_schema: unsupported keyword 'pattern' for type string at / (...)").
std::string constraint_error(const SamplingParams& params);

// constraint_error for clients that load the library at run time (dlopen + dlsym of
// kConstraintCheckSymbol, as kEngineCreateSymbol): true when accepted, else false with *error set.
using ConstraintCheckFunction = bool (*)(const SamplingParams* params, std::string* error);
inline constexpr const char kConstraintCheckSymbol[] = "qwenvl_check_constraint";

}  // namespace qwenvl

extern "C" __attribute__((visibility("default"))) bool qwenvl_check_constraint(const qwenvl::SamplingParams* params,
                                                                               std::string* error);
