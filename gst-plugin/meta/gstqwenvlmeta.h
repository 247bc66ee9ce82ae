/* GstQwenVLMeta: the answer of the qwenvl element, attached to the video buffer that follows it.
 *
 * A GstCustomMeta (registered with gst_meta_register_custom) whose GstStructure holds the same
 * fields as the element's "qwenvl-result" bus message and "result" signal, so that C, C++ and
 * Python read it alike:
 *
 *   text              (string)   the answer
 *   prompt            (string)   the question, placeholders expanded
 *   stream-id         (string)   the element's stream id
 *   request-id        (guint64)  the element's request id (process-unique; the "ask" signal returns it)
 *   pts               (guint64)  presentation time of the frame asked about (a clip's first frame)
 *   latency           (guint64)  submit to answer, nanoseconds
 *   ttft              (guint64)  submit to first generated token, nanoseconds
 *   prompt-tokens     (gint)     tokens of the prompt, image tokens included
 *   generated-tokens  (gint)     tokens generated
 *   token-ids         (GstValueArray of gint) the generated ids
 *   finish-reason     (string)   "eos", "length" or "stop_string"
 *   stop-string       (string)   with finish-reason "stop_string" only: the stop string that ended the
 *                                answer (left out of text)
 *   alert             (gboolean) the answer met the element's alert-when (FALSE without one); an
 *                                element older than alert-when leaves it out: read a missing one as FALSE
 *
 * Clips (clip-frames >= 2) add:
 *   window-start      (guint64)  pts of the clip's first frame
 *   window-end        (guint64)  pts of the clip's last frame
 *   clip-frames       (guint)    frames in the clip
 * roi mode adds, for the GstVideoRegionOfInterestMeta box asked about:
 *   roi-id            (gint)     the box's id (GstVideoRegionOfInterestMeta.id)
 *   roi-type          (string)   its label (roi_type)
 *   roi-x, roi-y, roi-width, roi-height (guint) the crop sent, clamped to the frame
 *
 * C:      const GstStructure *s = gst_buffer_get_qwenvl_meta (buffer);
 * Python: meta = buffer.get_custom_meta ("GstQwenVLMeta"); s = meta.get_structure ()
 *
 * Link with `pkg-config --cflags --libs gstqwenvlmeta-1.0`.
 */
#ifndef GST_QWENVL_META_H
#define GST_QWENVL_META_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_QWENVL_META_NAME "GstQwenVLMeta"

#define GST_QWENVL_FIELD_TEXT "text"
#define GST_QWENVL_FIELD_PROMPT "prompt"
#define GST_QWENVL_FIELD_STREAM_ID "stream-id"
#define GST_QWENVL_FIELD_REQUEST_ID "request-id"
#define GST_QWENVL_FIELD_PTS "pts"
#define GST_QWENVL_FIELD_LATENCY "latency"
#define GST_QWENVL_FIELD_TTFT "ttft"
#define GST_QWENVL_FIELD_PROMPT_TOKENS "prompt-tokens"
#define GST_QWENVL_FIELD_GENERATED_TOKENS "generated-tokens"
#define GST_QWENVL_FIELD_TOKEN_IDS "token-ids"
#define GST_QWENVL_FIELD_FINISH_REASON "finish-reason"
#define GST_QWENVL_FIELD_STOP_STRING "stop-string"
#define GST_QWENVL_FIELD_ALERT "alert"
#define GST_QWENVL_FIELD_INCOMPLETE "incomplete"  /* a json-schema / choices answer cut before it ended */
#define GST_QWENVL_FIELD_ANSWER "answer"  /* a complete json-schema answer, parsed (GstStructure for objects) */
#define GST_QWENVL_FIELD_WINDOW_START "window-start"
#define GST_QWENVL_FIELD_WINDOW_END "window-end"
#define GST_QWENVL_FIELD_CLIP_FRAMES "clip-frames"
#define GST_QWENVL_FIELD_ROI_ID "roi-id"
#define GST_QWENVL_FIELD_ROI_TYPE "roi-type"
#define GST_QWENVL_FIELD_ROI_X "roi-x"
#define GST_QWENVL_FIELD_ROI_Y "roi-y"
#define GST_QWENVL_FIELD_ROI_WIDTH "roi-width"
#define GST_QWENVL_FIELD_ROI_HEIGHT "roi-height"

/* Registers the meta once (thread-safe) and returns its info. */
const GstMetaInfo *gst_qwenvl_meta_get_info (void);

/* Adds a meta to a writable buffer whose structure becomes a copy of the fields of @fields (its
 * name is ignored). Returns the meta's structure, owned by the buffer. */
GstStructure *gst_buffer_add_qwenvl_meta (GstBuffer * buffer, const GstStructure * fields);

/* The first GstQwenVLMeta of @buffer (NULL when it has none). */
const GstStructure *gst_buffer_get_qwenvl_meta (GstBuffer * buffer);

/* Every GstQwenVLMeta of @buffer in the order they were added: set *state to NULL first, call
 * until it returns NULL. A buffer carries one meta per answer that arrived since the last one. */
const GstStructure *gst_buffer_iterate_qwenvl_meta (GstBuffer * buffer, gpointer * state);

/* How many GstQwenVLMeta @buffer carries. */
guint gst_buffer_count_qwenvl_meta (GstBuffer * buffer);

G_END_DECLS

#endif /* GST_QWENVL_META_H */
