// alert-when's conditions alone (gst-plugin/alert_condition.cpp): regex and field conditions on
// answers, and the faults a bad condition is refused with.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "alert_condition.h"

namespace qwenvl::gst {
namespace {

bool matches(const std::string& condition, const std::string& answer) {
  const AlertMatch m = AlertCondition::parse(condition)->evaluate(answer);
  EXPECT_EQ(m.error, "") << condition << " on " << answer;
  return m.matched;
}

// The message a condition is refused with ("" when it is accepted).
std::string fault(const std::string& condition) {
  try {
    AlertCondition::parse(condition);
  } catch (const AlertConditionError& e) {
    return e.what();
  }
  return "";
}

::testing::AssertionResult refused_naming(const std::string& condition, const std::string& part) {
  const std::string message = fault(condition);
  if (message.find("alert-when '" + condition + "'") == std::string::npos || message.find(part) == std::string::npos)
    return ::testing::AssertionFailure() << condition << " gave \"" << message << "\", not naming \"" << part << "\"";
  return ::testing::AssertionSuccess();
}

TEST(AlertCondition, RegexSearchesTheAnswer) {
  EXPECT_TRUE(matches("regex:cat", "a cat sat"));
  EXPECT_FALSE(matches("regex:cat", "a dog sat"));
  EXPECT_TRUE(matches("regex:(?i)^\\W*yes\\b", "Yes."));
  EXPECT_TRUE(matches("regex:(?i)^\\W*yes\\b", "  \"yes\""));
  EXPECT_FALSE(matches("regex:(?i)^\\W*yes\\b", "eyes"));
  EXPECT_FALSE(matches("regex:(?i)^\\W*yes\\b", "no, yes"));
  EXPECT_TRUE(matches("regex:^$", ""));
  EXPECT_TRUE(matches("regex:caf\xc3\xa9", "un caf\xc3\xa9"));  // UTF-8 in pattern and answer
  EXPECT_TRUE(matches("regex:^.{4}$", "caf\xc3\xa9")) << "characters, not bytes";
}

TEST(AlertCondition, RegexToleratesInvalidUtf8InTheAnswer) {
  // Random-weight models write broken UTF-8; matching goes around it instead of failing.
  EXPECT_TRUE(matches("regex:cat", "\xff\xfe a cat \xc3"));
  EXPECT_FALSE(matches("regex:dog", "\xff\xfe a cat \xc3"));
}

TEST(AlertCondition, RegexLimitsStopACatastrophicPattern) {
  const std::string answer = std::string(5000, 'a') + "!";
  for (const char* pattern : {"regex:(a+)+$", "regex:^(a|aa)+$", "regex:(\\w+\\s?)+$"}) {
    const auto start = std::chrono::steady_clock::now();
    const AlertMatch m = AlertCondition::parse(pattern)->evaluate(answer);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_FALSE(m.matched) << pattern;
    EXPECT_NE(m.error.find("limit"), std::string::npos) << pattern << ": " << m.error;
    EXPECT_LT(seconds, 2.0) << pattern;
  }
}

TEST(AlertCondition, FieldComparesNumbers) {
  EXPECT_TRUE(matches("field:people>=3", R"({"people":3})"));
  EXPECT_TRUE(matches("field:people>=3", R"({"people":7,"vehicle":true})"));
  EXPECT_FALSE(matches("field:people>=3", R"({"people":2})"));
  EXPECT_TRUE(matches("field:people>2", R"({"people":3})"));
  EXPECT_FALSE(matches("field:people>3", R"({"people":3})"));
  EXPECT_TRUE(matches("field:people<=3", R"({"people":3})"));
  EXPECT_FALSE(matches("field:people<3", R"({"people":3})"));
  EXPECT_TRUE(matches("field:score<0.5", R"({"score":0.25})"));
  EXPECT_TRUE(matches("field:score>=-1e3", R"({"score":-2.5})"));
  EXPECT_TRUE(matches("field:people==3", R"({"people":3.0})")) << "JSON numbers compare by value";
  EXPECT_TRUE(matches("field:people!=3", R"({"people":4})"));
  EXPECT_FALSE(matches("field:people!=3", R"({"people":3})"));
  // An ordering needs a number field.
  EXPECT_FALSE(matches("field:people>=3", R"({"people":"7"})"));
  EXPECT_FALSE(matches("field:people>=3", R"({"people":null})"));
}

TEST(AlertCondition, FieldComparesStringsBooleansAndNull) {
  EXPECT_TRUE(matches("field:label==\"cat\"", R"({"label":"cat"})"));
  EXPECT_FALSE(matches("field:label==\"cat\"", R"({"label":"Cat"})"));
  EXPECT_TRUE(matches("field:label!=\"cat\"", R"({"label":"dog"})"));
  EXPECT_TRUE(matches("field:vehicle==true", R"({"vehicle":true})"));
  EXPECT_FALSE(matches("field:vehicle==true", R"({"vehicle":"true"})"));
  EXPECT_TRUE(matches("field:vehicle==false", R"({"vehicle":false})"));
  EXPECT_TRUE(matches("field:plate==null", R"({"plate":null})"));
  EXPECT_TRUE(matches("field:people!=\"3\"", R"({"people":3})")) << "a number is not a string";
  EXPECT_TRUE(matches("field:label==\"caf\xc3\xa9\"", "{\"label\":\"caf\xc3\xa9\"}"));
}

TEST(AlertCondition, FieldPathsStepIntoObjectsAndArrays) {
  const std::string scene = R"({"scene":{"vehicle":{"count":2}},"items":[{"kind":"bus"},{"kind":"car"}]})";
  EXPECT_TRUE(matches("field:scene.vehicle.count>0", scene));
  EXPECT_TRUE(matches("field:items.1.kind==\"car\"", scene));
  EXPECT_FALSE(matches("field:items.2.kind==\"car\"", scene));  // past the end
  EXPECT_FALSE(matches("field:scene.vehicle.count.more>0", scene));
  EXPECT_FALSE(matches("field:scene.0==1", scene)) << "a number names a member of an object, not an index";
  EXPECT_TRUE(matches("field:scene.0==1", R"({"scene":{"0":1}})"));
  EXPECT_TRUE(matches("field:  people >= 3  ", R"({"people":3})")) << "blanks around PATH, OP and VALUE";
}

TEST(AlertCondition, AnswersThatAreNotJsonOrLackTheFieldNeverMatch) {
  for (const char* condition : {"field:people>=3", "field:people==3", "field:people!=3", "field:label!=\"cat\""}) {
    EXPECT_FALSE(matches(condition, "three people")) << condition;
    EXPECT_FALSE(matches(condition, "")) << condition;
    EXPECT_FALSE(matches(condition, R"({"people":)")) << condition;  // cut short
    EXPECT_FALSE(matches(condition, R"({"vehicle":true})")) << condition;
    EXPECT_FALSE(matches(condition, "[3]")) << condition;
    EXPECT_FALSE(matches(condition, "\xff{\"people\":3}")) << condition;
  }
  EXPECT_TRUE(matches("field:people==3", " \n{\"people\":3}\n")) << "blanks around the document are JSON";
}

TEST(AlertCondition, BadConditionsAreRefusedNamingTheFault) {
  EXPECT_TRUE(refused_naming("people>=3", "must start with regex:"));
  EXPECT_TRUE(refused_naming("Regex:cat", "must start with regex:"));
  EXPECT_TRUE(refused_naming("regex:", "needs a PATTERN"));
  EXPECT_TRUE(refused_naming("regex:(cat", "bad regex at offset 4"));
  EXPECT_TRUE(refused_naming("regex:(cat", "missing closing parenthesis"));
  EXPECT_TRUE(refused_naming("regex:[z-a]", "bad regex"));
  EXPECT_TRUE(refused_naming("regex:caf\xc3", "bad regex")) << "a pattern that is not UTF-8";
  EXPECT_TRUE(refused_naming("field:people", "needs PATH OP VALUE"));
  EXPECT_TRUE(refused_naming("field:people=3", "unknown operator '=' (use ==)"));
  EXPECT_TRUE(refused_naming("field:people!3", "unknown operator '!' (use !=)"));
  EXPECT_TRUE(refused_naming("field:>=3", "needs a PATH before >="));
  EXPECT_TRUE(refused_naming("field:a..b==1", "empty name"));
  EXPECT_TRUE(refused_naming("field:.a==1", "empty name"));
  EXPECT_TRUE(refused_naming("field:a.==1", "empty name"));
  EXPECT_TRUE(refused_naming("field:a==", "needs a VALUE after =="));
  EXPECT_TRUE(refused_naming("field:a==yes", "the VALUE 'yes' is not a JSON scalar"));
  EXPECT_TRUE(refused_naming("field:a===3", "the VALUE '=3' is not a JSON scalar"));
  EXPECT_TRUE(refused_naming("field:a==3 4", "is not a JSON scalar"));
  EXPECT_TRUE(refused_naming("field:a=={\"b\":1}", "not an object"));
  EXPECT_TRUE(refused_naming("field:a==[1]", "not an array"));
  EXPECT_TRUE(refused_naming("field:a<\"x\"", "< compares numbers"));
  EXPECT_TRUE(refused_naming("field:a>=true", ">= compares numbers"));
  EXPECT_EQ(fault("field:a>=3"), "");
  EXPECT_EQ(fault("regex:^"), "");
}

}  // namespace
}  // namespace qwenvl::gst
