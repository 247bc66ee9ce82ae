// Chat templates written by a hostile user (a model directory from the internet) and what fuzzing
// (scripts/fuzz.sh fuzz_chat_template, fuzz_chat_messages) found: each must end in a qwenvl::Error
// naming the template and the place, never a crash, a hang or all the memory. Integers that Python
// would grow past 64 bits are an "integer overflow" error; nesting past 100 levels, a string past
// 64 MiB, a list past 10^6 items and a render creating more than its budget are refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "chat/jinja/template.h"
#include "error_of.h"
#include "qwenvl/error.h"
#include "test_util.h"

namespace qwenvl::model::jinja {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string render(const std::string& source) {
  return Template(source, "case.jinja").render(Dict{});
}

using test::error_of;

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

constexpr const char* kMin = "(-9223372036854775807 - 1)";

TEST(JinjaHostile, FloorDivisionAndModuloOfTheSmallestIntegerByMinusOne) {
  // x86 traps (SIGFPE) on INT64_MIN / -1 and INT64_MIN % -1: the whole process was gone.
  EXPECT_THAT(error_of([] { render(std::string("{{ ") + kMin + " // -1 }}"); }), HasSubstr("integer overflow in '//'"));
  EXPECT_EQ(render(std::string("{{ ") + kMin + " % -1 }}"), "0");
  EXPECT_EQ(render(std::string("{{ ") + kMin + " is divisibleby(-1) }}"), "True");
  EXPECT_EQ(render(std::string("{{ 7 // -1 }} {{ -7 % -1 }}")), "-7 0");
}

TEST(JinjaHostile, FloorDivisionAndModuloKeepPythonsSigns) {
  EXPECT_EQ(render("{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 // -2 }} {{ -7 % -3 }}"), "-4 2 -2 -4 -1");
  // At the edge of the range: Python gives -9223372036854775808 % 3 == 1 and // 3 == -3074457345618258603.
  EXPECT_EQ(render(std::string("{{ ") + kMin + " % 3 }} {{ " + kMin + " // 3 }}"), "1 -3074457345618258603");
}

TEST(JinjaHostile, SignedOverflowIsAnErrorNotAWrap) {
  EXPECT_THAT(error_of([] { render("{{ 9223372036854775807 + 1 }}"); }), HasSubstr("integer overflow in '+'"));
  EXPECT_THAT(error_of([] { render("{{ -9223372036854775807 - 2 }}"); }), HasSubstr("integer overflow in '-'"));
  EXPECT_THAT(error_of([] { render("{{ 3037000500 * 3037000500 }}"); }), HasSubstr("integer overflow in '*'"));
  EXPECT_THAT(error_of([] { render("{{ 2 ** 63 }}"); }), HasSubstr("integer overflow in '**'"));
  EXPECT_THAT(error_of([] { render("{{ 10 ** 100 }}"); }), HasSubstr("integer overflow"));
  EXPECT_THAT(error_of([] { render(std::string("{{ -") + kMin + " }}"); }), HasSubstr("integer overflow in '-'"));
  EXPECT_THAT(error_of([] { render(std::string("{{ ") + kMin + " | abs }}"); }), HasSubstr("integer overflow in abs"));
  EXPECT_THAT(error_of([] { render("{{ [9223372036854775807, 1] | sum }}"); }), HasSubstr("integer overflow in sum"));
  EXPECT_THAT(error_of([] { render("\n{{ 1e300 | int }}"); }), HasSubstr("case.jinja:2:"));
  // What fits is exact, as in Python.
  EXPECT_EQ(render("{{ 2 ** 62 }} {{ (-2) ** 63 }} {{ (-1) ** 65 }} {{ 1 ** 9223372036854775807 }} {{ 2 ** -1 }}"),
            "4611686018427387904 -9223372036854775808 -1 1 0.5");
  EXPECT_EQ(render("{{ 9223372036854775806 + 1 }} {{ 1e999 }} {{ -1e999 }}"), "9223372036854775807 inf -inf");
}

TEST(JinjaHostile, IndexAndRangeArithmeticStaysInRange) {
  EXPECT_EQ(render("{{ [1, 2, 3][1::9223372036854775807] }} {{ [1, 2, 3][::-9223372036854775807] }}"), "[2] [3]");
  EXPECT_EQ(render("{{ range(9223372036854775800, 9223372036854775807, 5) | list }}"),
            "[9223372036854775800, 9223372036854775805]");
  EXPECT_THAT(error_of([] { render("{{ x.99999999999999999999 }}"); }), HasSubstr("integer literal out of range"));
  EXPECT_EQ(render("{{ [[7]] | map(attribute='99999999999999999999') | list | length }}"), "1");
}

// A few thousand levels overflowed the parser's stack (and under ASan a thousand nested ifs the
// renderer's): each kind of nesting stops at 100 levels with the line where it went too deep.
TEST(JinjaHostile, DeepNestingIsRefusedWithItsLine) {
  const int n = 5000;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"parentheses", "{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}"},
      {"brackets", "{{ " + repeat("[", n) + "1" + repeat("]", n) + " }}"},
      {"unary minus", "{{ " + repeat("-", n) + "1 }}"},
      {"not", "{{ " + repeat("not ", n) + "x }}"},
      {"ifs", repeat("{% if true %}\n", n) + repeat("{% endif %}", n)},
      {"fors", repeat("{% for x in [1] %}\n", n) + repeat("{% endfor %}", n)},
      {"sums", "{{ 1" + repeat(" + 1", n) + " }}"},
      {"filters", "{{ 1" + repeat(" | abs", n) + " }}"},
      {"attributes", "{{ x" + repeat(".a", n) + " }}"},
      {"calls", "{{ f" + repeat("()", n) + " }}"},
      {"conditionals", "{{ 1" + repeat(" if x else 1", n) + " }}"},
      {"dicts", "{{ " + repeat("{'k': ", n) + "1" + repeat("}", n) + " }}"},
  };
  for (const auto& [what, source] : cases) {
    SCOPED_TRACE(what);
    const std::string message = error_of([&] { Template(source, "deep.jinja"); });
    EXPECT_THAT(message, StartsWith("chat template deep.jinja:"));
    EXPECT_THAT(message, HasSubstr("nested deeper than 100 levels"));
  }
  // The line named is where the limit was crossed: the 100th "if" opens the 100th line.
  EXPECT_THAT(error_of([&] { Template(cases[4].second, "deep.jinja"); }), StartsWith("chat template deep.jinja:100:"));
  // Depths real templates use still work.
  EXPECT_EQ(render("{{ " + repeat("(", 40) + "1" + repeat(")", 40) + " }}"), "1");
  EXPECT_EQ(render(repeat("{% if true %}", 40) + "x" + repeat("{% endif %}", 40)), "x");
}

TEST(JinjaHostile, AStringDoubledInALoopStopsAtTheStringLimit) {
  const std::string message = error_of([] {
    render("{% set ns = namespace(s='x') %}{% for i in range(100) %}\n{% set ns.s = ns.s + ns.s %}{% endfor %}");
  });
  EXPECT_THAT(message, StartsWith("chat template case.jinja:2:"));
  EXPECT_THAT(message, HasSubstr("exceeds the limit of 67108864 bytes"));
  EXPECT_THAT(error_of([] { render("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"); }),
              HasSubstr("exceeds the limit"));
  EXPECT_THAT(error_of([] { render("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"); }),
              HasSubstr("more than 1000000 items"));
}

TEST(JinjaHostile, BuiltinsThatMultiplyAStringAreBounded) {
  const std::string big = "{% set s = 'x' * 60000000 %}";
  EXPECT_THAT(error_of([&] { render(big + "{{ s.replace('', s) }}"); }), HasSubstr("exceeds the limit"));
  EXPECT_THAT(error_of([&] { render(big + "{{ [s, s] | join(s) }}"); }), HasSubstr("exceeds the limit"));
  EXPECT_THAT(error_of([&] { render(big + "{{ [s, s] }}"); }), HasSubstr("exceeds the limit"));
  EXPECT_THAT(error_of([] { render("{{ 'a' | indent(1000000000000) }}"); }), HasSubstr("exceeds the limit"));
  EXPECT_THAT(error_of([] { render("{{ [[1]] | tojson(indent=1000000000) }}"); }), HasSubstr("exceeds the limit"));
  EXPECT_THAT(error_of([] { render("{{ (',' * 3000000).split(',') | length }}"); }), HasSubstr("more than 1000000 items"));
}

TEST(JinjaHostile, ANamespaceCannotHoldItself) {
  // A cycle never prints (endless recursion) and never frees (a leak).
  EXPECT_THAT(error_of([] { render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"); }),
              HasSubstr("a namespace cannot be stored in a namespace"));
  EXPECT_THAT(error_of([] { render("{% set ns = namespace() %}{% set ns.l = [1, {'k': ns}] %}"); }),
              HasSubstr("a namespace cannot be stored in a namespace"));
  EXPECT_EQ(render("{% set ns = namespace(n=0, l=[]) %}{% set ns.l = ns.l + [ns.n] %}{{ ns.l }}"), "[0]");
}

TEST(JinjaHostile, ValuesNestedInALoopStopAtTheDepthLimit) {
  EXPECT_THAT(error_of([] {
                render("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}");
              }),
              HasSubstr("values nested deeper than 100 levels"));
}

TEST(JinjaHostile, WhatARenderCreatesInAllIsBounded) {
  // Each step makes a fresh 10^5-item list and keeps it: without a budget, terabytes.
  EXPECT_THAT(error_of([] {
                render("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
                       "{% set ns.l = ns.l + [range(100000) | list] %}{% endfor %}");
              }),
              HasSubstr("created more values than its budget allows"));
}

TEST(JinjaHostile, ALargeTemplateLexesInLinearTime) {
  // Each token's line used to be counted from the start of the file: minutes for this one.
  const auto start = std::chrono::steady_clock::now();
  const std::string out = render(repeat("{{ 1 }}\n", 200000));
  EXPECT_EQ(out.size(), 400000u - 1);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30.0);
}

TEST(JinjaHostile, DeeplyNestedMessagesAreAnErrorNamingTheTemplate) {
  const ChatTemplate chat("{{ messages | length }}", "chat_template.json");
  nlohmann::ordered_json deep = "x";
  for (int i = 0; i < 1000; ++i) deep = nlohmann::ordered_json::array({deep});
  const nlohmann::ordered_json messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", deep}}});
  EXPECT_THAT(error_of([&] { chat.render_json(messages, ChatOptions{}); }),
              HasSubstr("chat messages for chat_template.json: values nested deeper than 100 levels"));
  const nlohmann::ordered_json huge = nlohmann::ordered_json::array({{{"role", "user"}, {"content", 18446744073709551615u}}});
  EXPECT_THAT(error_of([&] { chat.render_json(huge, ChatOptions{}); }), HasSubstr("does not fit 64 bits"));
}

}  // namespace
}  // namespace qwenvl::model::jinja
