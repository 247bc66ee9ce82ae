// The qwenvl element delivers answers downstream in agreeing forms: a GstQwenVLMeta on the outgoing
// buffer, the qwenvl-result message and the result signal, a text/x-raw item on text_src, and with
// overlay=true the caption drawn onto the frame; an answer that meets alert-when also posts
// qwenvl-alert; failures post qwenvl-failed, frames not asked post qwenvl-dropped. In sync mode an
// answer slower than the reported latency raises it.
#pragma once

#include <gst/gst.h>

#include "gstqwenvl_private.h"

namespace qwenvl::gst {

// Hands every answer that came back to downstream: meta on `buffer` (when there is one), the
// message and the signal (with alert set by alert-when, and a qwenvl-alert message after the
// result's when it is); then the text_src item for this buffer's time.
void deliver_answers(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer, GstClockTime pts, GstClockTime duration,
                     const Settings& s);

// overlay=true: the current caption drawn onto the outgoing frame, after the frame was asked about
// (the model never sees a caption). The buffer is writable: the element is in place, not passthrough.
void draw_overlay(GstQwenVL* self, GstBuffer* buffer, GstClockTime pts, const Settings& s);

// The qwenvl-dropped message: what was not asked (pts), why, and the element's drop count so far.
GstStructure* drop_message(GstClockTime pts, const char* reason, const RequestTracker& tracker);
void post_drop(GstQwenVL* self, GstClockTime pts, const char* reason, const RequestTracker& tracker);

}  // namespace qwenvl::gst
