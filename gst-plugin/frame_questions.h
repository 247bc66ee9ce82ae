// The qwenvl element turns frames into questions: which frame is due (interval, change-threshold,
// drop policy), the questions of the `ask` signal waiting for it, the frame mapped and viewed as the
// engine takes it, whole, as regions of interest (roi) or as part of a clip, and the engine Request
// built from the element's settings. Runs on the streaming thread, except queue_ask().
#pragma once

#include <gst/gst.h>

#include <vector>

#include "gstqwenvl_private.h"

namespace qwenvl::gst {

// Submits every question about `buffer`: the pending `ask`s, then the clip being collected or, when
// the frame is due, the frame itself (whole, its regions, or the start of a clip); a due frame no
// more different than change-threshold from the last one asked is skipped (skipped-unchanged), one
// with no room under max-pending is dropped (drop-policy) with a qwenvl-dropped message. Returns
// the engine's ids of what was submitted, for sync mode to wait on.
std::vector<qwenvl::RequestId> ask_about_buffer(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer,
                                                const Settings& s);

// The `ask` action signal (any thread): queues `prompt` (NULL or empty: the prompt property) for the
// next frame and returns the request id its answer will carry.
guint64 queue_ask(GstQwenVL* self, const gchar* prompt);

// A clip with frames that will not be asked: counted as dropped and said in a qwenvl-dropped message
// (pts: the clip's first frame, clip-frames: the frames collected, window-start/-end) and the log.
void drop_partial_clip(GstQwenVL* self, const Runtime& rt, const char* reason);

// EOS: a clip still being collected is asked with the frames it has (fewer than clip-frames; the
// engine pads an odd count by repeating the last frame, as transformers does), so that no frame is
// lost. Not with drain-on-eos=false in async mode: the pending answers are cancelled there, and the
// clip is dropped with a message instead of being asked for nothing.
void finish_partial_clip(GstQwenVL* self, const Runtime& rt, const Settings& s);

}  // namespace qwenvl::gst
