/* GstQwenVLMeta: see gstqwenvlmeta.h. */
#include "gstqwenvlmeta.h"

/* The answer describes the frame asked about, not its pixels: it survives every transform (copy,
 * scale, colour conversion), so each copies it. */
static gboolean
qwenvl_meta_transform (GstBuffer * transbuf, GstCustomMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data, gpointer user_data)
{
  (void) buffer;
  (void) type;
  (void) data;
  (void) user_data;
  gst_buffer_add_qwenvl_meta (transbuf, gst_custom_meta_get_structure (meta));
  return TRUE;
}

const GstMetaInfo *
gst_qwenvl_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;
  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    /* No tags: the meta depends on no property of the buffer's contents. */
    static const gchar *tags[] = { NULL };
    const GstMetaInfo *registered = gst_meta_get_info (GST_QWENVL_META_NAME);
    if (registered == NULL)
      registered = gst_meta_register_custom (GST_QWENVL_META_NAME, tags,
          qwenvl_meta_transform, NULL, NULL);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) registered);
  }
  return info;
}

static gboolean
copy_field (GQuark field, const GValue * value, gpointer target)
{
  gst_structure_id_set_value ((GstStructure *) target, field, value);
  return TRUE;
}

GstStructure *
gst_buffer_add_qwenvl_meta (GstBuffer * buffer, const GstStructure * fields)
{
  GstCustomMeta *meta;
  GstStructure *structure;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);
  gst_qwenvl_meta_get_info ();
  meta = gst_buffer_add_custom_meta (buffer, GST_QWENVL_META_NAME);
  if (meta == NULL)
    return NULL;
  structure = gst_custom_meta_get_structure (meta);
  if (fields != NULL)
    gst_structure_foreach (fields, copy_field, structure);
  return structure;
}

const GstStructure *
gst_buffer_iterate_qwenvl_meta (GstBuffer * buffer, gpointer * state)
{
  GstMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  gst_qwenvl_meta_get_info ();
  while ((meta = gst_buffer_iterate_meta (buffer, state)) != NULL) {
    if (gst_meta_info_is_custom (meta->info)
        && gst_custom_meta_has_name ((GstCustomMeta *) meta, GST_QWENVL_META_NAME))
      return gst_custom_meta_get_structure ((GstCustomMeta *) meta);
  }
  return NULL;
}

const GstStructure *
gst_buffer_get_qwenvl_meta (GstBuffer * buffer)
{
  gpointer state = NULL;
  return gst_buffer_iterate_qwenvl_meta (buffer, &state);
}

guint
gst_buffer_count_qwenvl_meta (GstBuffer * buffer)
{
  gpointer state = NULL;
  guint count = 0;
  while (gst_buffer_iterate_qwenvl_meta (buffer, &state) != NULL)
    count++;
  return count;
}
