// A JSON-schema answer as GStreamer values, so that a pad probe reads its fields without a JSON
// parser: objects become GstStructures (named "answer"), arrays GstValueArrays, strings, booleans,
// integers (gint64) and other numbers (gdouble) themselves, null a NULL string.
#pragma once

#include <gst/gst.h>

#include <string>

namespace qwenvl::gst {

// Sets `out` (uninitialised) to the answer's value; false, leaving `out` unset, when `text` is not JSON.
bool json_answer_value(const std::string& text, GValue* out);

}  // namespace qwenvl::gst
