// The template interpreter against transformers' jinja2 environment (reference/jinja_cases.json:
// the Qwen2.5 text template with tools, a reasoning template, whitespace control, filters, tests,
// operators; cases where jinja2 raises must raise here), plus its error reporting and bounds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat/jinja/template.h"
#include "error_of.h"
#include "qwenvl/error.h"
#include "test_util.h"

namespace qwenvl::model::jinja {
namespace {

using ::testing::HasSubstr;

nlohmann::ordered_json load_cases() {
  return nlohmann::ordered_json::parse(test::read_text(test::fixtures_dir() / "reference" / "jinja_cases.json"));
}

std::string render(const std::string& source, const nlohmann::ordered_json& context = nlohmann::ordered_json::object(),
                   const RenderLimits& limits = {}) {
  Template t(source, "case.jinja");
  return t.render(from_json(context).as_dict(), limits);
}

using test::error_of;

TEST(Jinja, MatchesTransformersJinja2) {
  auto cases = load_cases()["cases"];
  ASSERT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::string source = c["template"];
    if (c.contains("error")) {
      EXPECT_THROW(render(source, c["context"]), Error) << "jinja2 raised " << c["error"];
    } else {
      EXPECT_EQ(render(source, c["context"]), c["expected"].get<std::string>());
    }
  }
}

TEST(Jinja, RaiseExceptionCarriesTheMessageAndPosition) {
  std::string what = error_of([] { render("ok\n  {{ raise_exception('roles must alternate') }}"); });
  EXPECT_THAT(what, HasSubstr("case.jinja:2:6"));
  EXPECT_THAT(what, HasSubstr("roles must alternate"));
}

TEST(Jinja, UnsupportedSyntaxNamesFileAndPosition) {
  EXPECT_THAT(error_of([] { Template("a\n  {% filter upper %}x{% endfilter %}", "my.jinja"); }),
              HasSubstr("my.jinja:2:6"));
  EXPECT_THAT(error_of([] { Template("{% include 'x.jinja' %}", "my.jinja"); }), HasSubstr("'include'"));
  EXPECT_THAT(error_of([] { Template("{% frobnicate %}", "my.jinja"); }), HasSubstr("unknown tag 'frobnicate'"));
  EXPECT_THAT(error_of([] { Template("{% for x in xs recursive %}{% endfor %}", "my.jinja"); }),
              HasSubstr("my.jinja:1:"));
  EXPECT_THAT(error_of([] { Template("{{ a $ b }}", "my.jinja"); }), HasSubstr("my.jinja:1:6"));
  EXPECT_THAT(error_of([] { Template("x {% if a %}y", "my.jinja"); }), HasSubstr("'endif'"));
  EXPECT_THAT(error_of([] { Template("{{ 'abc }}", "my.jinja"); }), HasSubstr("unterminated string"));
  EXPECT_THAT(error_of([] { Template("{{ (1 + 2 }}", "my.jinja"); }), HasSubstr("my.jinja:1:"));
  EXPECT_THAT(error_of([] { Template("{# open comment", "my.jinja"); }), HasSubstr("comment"));
}

TEST(Jinja, UnknownFiltersAndTestsFailAtTheirPosition) {
  EXPECT_THAT(error_of([] { render("\n{{ 'x' | frobnicate }}"); }), HasSubstr("case.jinja:2:10"));
  EXPECT_THAT(error_of([] { render("{{ 1 is frobnicated }}"); }), HasSubstr("no test named 'frobnicated'"));
  EXPECT_THAT(error_of([] { render("{{ 'a'.nosuchmethod() }}"); }), HasSubstr("case.jinja:1:7"));
}

TEST(Jinja, RenderingIsBounded) {
  RenderLimits small;
  small.max_output_bytes = 1 << 20;
  small.max_steps = 100000;
  // Unbounded recursion, a huge loop nest, and output growth each stop with an error.
  EXPECT_THAT(error_of([&] { render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", nlohmann::ordered_json::object(), small); }),
              HasSubstr("nested deeper"));
  EXPECT_THAT(error_of([&] {
                render("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", nlohmann::ordered_json::object(), small);
              }),
              HasSubstr("steps"));
  EXPECT_THAT(error_of([&] {
                render("{% set s = 'x' * 100000 %}{% for i in range(1000) %}{{ s }}{% endfor %}", nlohmann::ordered_json::object(), small);
              }),
              HasSubstr("output exceeds"));
  EXPECT_THAT(error_of([&] { render("{{ range(1000000) | length }}", nlohmann::ordered_json::object(), small); }), HasSubstr("range too big"));
}

}  // namespace
}  // namespace qwenvl::model::jinja
