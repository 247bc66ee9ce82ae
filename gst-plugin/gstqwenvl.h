// The qwenvl element: asks a Qwen2.5-VL engine about video frames while the video passes through.
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_QWENVL (gst_qwenvl_get_type())
G_DECLARE_FINAL_TYPE(GstQwenVL, gst_qwenvl, GST, QWENVL, GstBaseTransform)

#define GST_TYPE_QWENVL_MODE (gst_qwenvl_mode_get_type())
GType gst_qwenvl_mode_get_type(void);
#define GST_TYPE_QWENVL_DROP_POLICY (gst_qwenvl_drop_policy_get_type())
GType gst_qwenvl_drop_policy_get_type(void);
#define GST_TYPE_QWENVL_DTYPE (gst_qwenvl_dtype_get_type())
GType gst_qwenvl_dtype_get_type(void);
#define GST_TYPE_QWENVL_PLACEMENT (gst_qwenvl_placement_get_type())
GType gst_qwenvl_placement_get_type(void);
#define GST_TYPE_QWENVL_REMOTE_IMAGE_FORMAT (gst_qwenvl_remote_image_format_get_type())
GType gst_qwenvl_remote_image_format_get_type(void);

GST_ELEMENT_REGISTER_DECLARE(qwenvl);

G_END_DECLS
