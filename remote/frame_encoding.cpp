// Frames to PNG / JPEG data URIs: libpng and libjpeg (turbo), no libtorch.
#include "frame_encoding.h"

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>

#include "kernels/frame_preparation_math.h"
#include "kernels/videoconvert_yuv.h"

namespace qwenvl::remote {

namespace {

PlaneGeometry checked_geometry(const FrameView& frame) {
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  if (frame.width <= 0 || frame.height <= 0 || geometry.count == 0)
    throw Error("a frame of " + std::to_string(frame.width) + "x" + std::to_string(frame.height) + " in format " +
                pixel_format_name(frame.format) + " cannot be sent");
  for (int p = 0; p < geometry.count; ++p)
    if (frame.planes[p] == nullptr || frame.strides[p] < geometry.row_bytes[p])
      throw Error(std::string("a frame's ") + geometry.names[p] + " plane is missing or its stride is shorter than a row");
  return geometry;
}

}  // namespace

OwnedFrame copy_frame(const FrameView& frame) {
  if (frame.memory != FrameMemory::kHost)
    throw Error("the remote engine takes frames in host memory, not CUDA memory (it encodes them on the host)");
  const PlaneGeometry geometry = checked_geometry(frame);
  OwnedFrame out;
  size_t total = 0;
  for (int p = 0; p < geometry.count; ++p) total += static_cast<size_t>(geometry.row_bytes[p] * geometry.rows[p]);
  out.bytes.resize(total);
  out.view = frame;
  out.view.keep_alive.reset();
  size_t offset = 0;
  for (int p = 0; p < geometry.count; ++p) {
    const auto row = static_cast<size_t>(geometry.row_bytes[p]);
    for (int64_t y = 0; y < geometry.rows[p]; ++y)
      std::copy_n(frame.planes[p] + y * frame.strides[p], row, out.bytes.data() + offset + y * row);
    out.view.planes[p] = out.bytes.data() + offset;
    out.view.strides[p] = static_cast<int>(row);
    offset += row * static_cast<size_t>(geometry.rows[p]);
  }
  return out;
}

std::vector<uint8_t> frame_to_rgb(const FrameView& frame) {
  checked_geometry(frame);
  kernels::frame_math::FrameArgs args;
  args.format = static_cast<int>(frame.format);  // the kernels' Format follows PixelFormat's order
  args.width = frame.width;
  args.height = frame.height;
  for (int p = 0; p < 3; ++p) args.planes[p] = frame.planes[p], args.strides[p] = frame.strides[p];
  if (is_yuv(frame.format)) {
    const kernels::VideoconvertYuv yuv = kernels::videoconvert_yuv(frame.yuv_matrix, frame.yuv_full_range, frame.height);
    args.coefficients = yuv.coefficients;
    args.chroma_h_cosited = yuv.chroma_h_cosited;
  }
  std::vector<uint8_t> rgb(static_cast<size_t>(frame.width) * frame.height * 3);
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x)
      kernels::frame_math::pixel_to_rgb(args, x, y, rgb.data() + (static_cast<size_t>(y) * frame.width + x) * 3);
  return rgb;
}

namespace {

void png_write_to_string(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), length);
}

void png_no_flush(png_structp) {}

[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  *static_cast<std::string*>(png_get_error_ptr(png)) = message;
  png_longjmp(png, 1);
}

struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

[[noreturn]] void jpeg_fail(j_common_ptr info) {
  auto* error = reinterpret_cast<JpegError*>(info->err);
  info->err->format_message(info, error->message);
  std::longjmp(error->jump, 1);
}

}  // namespace

std::string encode_png(const uint8_t* rgb, int width, int height, int png_compression) {
  std::string out, why;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &why, png_fail, nullptr);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  if (png == nullptr || info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw Error("libpng could not start a PNG");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("libpng could not write a PNG: " + why);
  }
  png_set_write_fn(png, &out, png_write_to_string, png_no_flush);
  png_set_compression_level(png, png_compression);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(rgb + static_cast<size_t>(y) * width * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string encode_jpeg(const uint8_t* rgb, int width, int height, int quality) {
  jpeg_compress_struct info{};
  JpegError error;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = jpeg_fail;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (setjmp(error.jump)) {
    jpeg_destroy_compress(&info);
    std::free(buffer);
    throw Error(std::string("libjpeg could not write a JPEG: ") + error.message);
  }
  jpeg_create_compress(&info);
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(width);
  info.image_height = static_cast<JDIMENSION>(height);
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(rgb + static_cast<size_t>(info.next_scanline) * width * 3);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  std::string out(reinterpret_cast<const char*>(buffer), size);
  jpeg_destroy_compress(&info);
  std::free(buffer);
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[k])); };
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[v >> shift & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    const uint32_t v = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::string image_data_uri(const FrameView& frame, RemoteImageFormat format, int jpeg_quality) {
  const std::vector<uint8_t> rgb = frame_to_rgb(frame);
  if (format == RemoteImageFormat::kJpeg)
    return "data:image/jpeg;base64," + base64_encode(encode_jpeg(rgb.data(), frame.width, frame.height, jpeg_quality));
  return "data:image/png;base64," + base64_encode(encode_png(rgb.data(), frame.width, frame.height));
}

}  // namespace qwenvl::remote
