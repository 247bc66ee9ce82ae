// A Jinja2 template interpreter for chat templates: the subset that published and fine-tuned chat
// templates use (if/for/set/macro, namespace(), loop.*, filters, tests, Python string methods),
// rendered as transformers renders them (jinja2 sandbox, trim_blocks, lstrip_blocks, its tojson and
// raise_exception). Anything else is an error naming the template file and position. Rendering is
// bounded: no template can run or grow its output without limit.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "chat/jinja/ast.h"
#include "chat/jinja/value.h"

namespace qwenvl::model::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{256} << 20;
  size_t max_steps = 20'000'000;  // statements executed plus loop iterations
  int max_call_depth = 64;        // nested macro calls
  // Bytes of strings and list / dict entries created in all (see jinja_value.h for the bounds on
  // one value: its size and its nesting).
  size_t max_created_bytes = size_t{256} << 20;
};

class Template {
 public:
  // Parses `source`; `name` (the file it came from) prefixes every error. Throws qwenvl::Error.
  Template(const std::string& source, std::string name);

  // Renders with `variables` as the template's globals. Throws qwenvl::Error naming the file,
  // line and column of the fault (also for raise_exception()).
  std::string render(const Dict& variables, const RenderLimits& limits = {}) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const Body> body_;
};

}  // namespace qwenvl::model::jinja
