// The qwenvl plugin: registers the qwenvl element, its roi test source qwenvlroitest and the
// GstQwenVLMeta. It links no engine library (the element loads it at NULL->READY), so it always
// registers.
#define PACKAGE "qwenvl"  // GST_PLUGIN_DEFINE names the package with it

#include <gst/gst.h>

#include "gstqwenvl.h"
#include "gstqwenvlroitest.h"
#include "gstqwenvlmeta.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gst_qwenvl_meta_get_info();
  gboolean ok = GST_ELEMENT_REGISTER(qwenvl, plugin);
  ok &= GST_ELEMENT_REGISTER(qwenvlroitest, plugin);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, qwenvl,
                  "Qwen2.5-VL vision-language answers about video frames, as metadata, text and messages", plugin_init,
                  QWENVL_VERSION, "Apache 2.0", "qwenvl", "https://github.com/qwenvl/qwenvl")
