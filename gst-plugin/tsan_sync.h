// Orders that ThreadSanitizer cannot see, made visible to it (scripts/sanitize.sh thread).
// Debian's GLib locks a GMutex (GST_OBJECT_LOCK, the pads' stream locks, GstTask's and the thread
// pool's queues) with atomics and futex system calls inside uninstrumented code: TSan sees neither
// the lock nor the order it gives, so two threads that take the object lock in turn look to it like
// a race on our fields. We tell it ourselves: acquire after taking a lock, release before giving it
// back. Outside a TSan build these are nothing.
#pragma once

#include <gst/gst.h>

#if defined(__SANITIZE_THREAD__)
#define QWENVL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QWENVL_TSAN 1
#endif
#endif

#ifdef QWENVL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace qwenvl::gst {

// Happens-before from every tsan_release(address) to a later tsan_acquire(address).
inline void tsan_acquire([[maybe_unused]] const void* address) {
#ifdef QWENVL_TSAN
  __tsan_acquire(const_cast<void*>(address));
#endif
}
inline void tsan_release([[maybe_unused]] const void* address) {
#ifdef QWENVL_TSAN
  __tsan_release(const_cast<void*>(address));
#endif
}

// GST_OBJECT_LOCK / GST_OBJECT_UNLOCK of an object whose fields our code guards with it.
inline void object_lock(gpointer object) {
  GST_OBJECT_LOCK(object);
  tsan_acquire(GST_OBJECT_GET_LOCK(object));
}
inline void object_unlock(gpointer object) {
  tsan_release(GST_OBJECT_GET_LOCK(object));
  GST_OBJECT_UNLOCK(object);
}

}  // namespace qwenvl::gst
