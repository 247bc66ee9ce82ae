// The qwenvlroitest element: attaches fixed GstVideoRegionOfInterestMeta boxes to every buffer,
// standing in for a detector in tests and demos of qwenvl's roi mode.
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_QWENVL_ROI_TEST (gst_qwenvl_roi_test_get_type())
G_DECLARE_FINAL_TYPE(GstQwenVLRoiTest, gst_qwenvl_roi_test, GST, QWENVL_ROI_TEST, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE(qwenvlroitest);

G_END_DECLS
