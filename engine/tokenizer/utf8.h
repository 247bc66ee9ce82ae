// UTF-8 repair with the "maximal subpart" rule (Unicode ch. 3, U+FFFD substitution), which both
// Rust's String::from_utf8_lossy (HF tokenizers' decode) and Python's bytes.decode("utf-8",
// "replace") (the reference for invalid input text) follow.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace qwenvl::model {

// `bytes` with every ill-formed or truncated sequence replaced by one U+FFFD per maximal subpart.
std::string utf8_lossy(std::string_view bytes);

// Appends utf8_lossy(bytes) to `out`.
void append_utf8_lossy(std::string_view bytes, std::string& out);

// Length of the longest prefix of `bytes` whose lossy decoding cannot change when more bytes are
// appended: everything except a trailing, still completable, multi-byte sequence.
size_t utf8_settled_prefix(std::string_view bytes);

// True when `bytes` is well-formed UTF-8.
bool utf8_is_valid(std::string_view bytes);

}  // namespace qwenvl::model
