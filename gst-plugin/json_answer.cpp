#include "json_answer.h"

#include <nlohmann/json.hpp>

namespace qwenvl::gst {
namespace {

void to_value(const nlohmann::json& j, GValue* out) {
  if (j.is_object()) {
    GstStructure* s = gst_structure_new_empty("answer");
    for (const auto& [key, member] : j.items()) {
      GValue v = G_VALUE_INIT;
      to_value(member, &v);
      gst_structure_take_value(s, key.c_str(), &v);
    }
    g_value_init(out, GST_TYPE_STRUCTURE);
    g_value_take_boxed(out, s);
  } else if (j.is_array()) {
    gst_value_array_init(out, j.size());
    for (const auto& item : j) {
      GValue v = G_VALUE_INIT;
      to_value(item, &v);
      gst_value_array_append_and_take_value(out, &v);
    }
  } else if (j.is_string()) {
    g_value_init(out, G_TYPE_STRING);
    g_value_set_string(out, j.get_ref<const std::string&>().c_str());
  } else if (j.is_boolean()) {
    g_value_init(out, G_TYPE_BOOLEAN);
    g_value_set_boolean(out, j.get<bool>() ? TRUE : FALSE);
  } else if (j.is_number_integer()) {
    g_value_init(out, G_TYPE_INT64);
    g_value_set_int64(out, j.is_number_unsigned() ? static_cast<gint64>(j.get<uint64_t>()) : j.get<int64_t>());
  } else if (j.is_number()) {
    g_value_init(out, G_TYPE_DOUBLE);
    g_value_set_double(out, j.get<double>());
  } else {
    g_value_init(out, G_TYPE_STRING);  // null
  }
}

}  // namespace

bool json_answer_value(const std::string& text, GValue* out) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  to_value(j, out);
  return true;
}

}  // namespace qwenvl::gst
