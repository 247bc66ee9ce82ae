// Caption drawing for overlay=true: see caption_overlay.h.
#include "caption_overlay.h"

#include <utf8proc.h>

#include <algorithm>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace qwenvl::gst {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// Bytes per pixel of the plane the caption is drawn on: the luma plane of a YUV frame.
int channels(PixelFormat format) { return is_yuv(format) ? 1 : rgb_bytes_per_pixel(format); }

// Font size and line spacing for a frame: about 1/24 of the height per line, never unreadably small.
struct Metrics {
  double scale;
  int thickness, ascent, line_height, pad;
};

Metrics metrics(int height) {
  Metrics m;
  m.scale = std::clamp(height / 640.0, 0.3, 2.5);
  m.thickness = m.scale >= 1.2 ? 2 : 1;
  int baseline = 0;
  const cv::Size size = cv::getTextSize("Ag", kFont, m.scale, m.thickness, &baseline);
  m.ascent = size.height;
  m.line_height = size.height + baseline + std::max(1, size.height / 3);
  m.pad = std::max(2, size.height / 2);
  return m;
}

int text_width(const std::string& text, const Metrics& m) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, m.scale, m.thickness, &baseline).width;
}

// Look-alikes for punctuation that has no compatibility decomposition to ASCII.
const char* ascii_punctuation(utf8proc_int32_t c) {
  switch (c) {
    case 0x2018: case 0x2019: case 0x201A: case 0x201B: case 0x2032: return "'";
    case 0x201C: case 0x201D: case 0x201E: case 0x201F: case 0x2033: case 0x00AB: case 0x00BB: return "\"";
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015: case 0x2212: return "-";
    case 0x2022: case 0x00B7: return "*";
    default: return nullptr;
  }
}

// Splits into words and hard line breaks ("\n" items).
std::vector<std::string> tokens(const std::string& ascii) {
  std::vector<std::string> out;
  std::string word;
  for (char c : ascii) {
    if (c == ' ' || c == '\n') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
      if (c == '\n') out.emplace_back("\n");
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

std::vector<std::string> wrap(const std::string& ascii, int max_width, const Metrics& m) {
  std::vector<std::string> lines;
  std::string line;
  bool open = false;  // a line was started (possibly empty, after a hard break)
  for (const std::string& token : tokens(ascii)) {
    if (token == "\n") {
      lines.push_back(line);
      line.clear();
      open = false;
      continue;
    }
    const std::string joined = line.empty() ? token : line + " " + token;
    if (text_width(joined, m) <= max_width) {
      line = joined;
      open = true;
      continue;
    }
    if (!line.empty()) lines.push_back(line);
    line.clear();
    // A word wider than the line is cut where it overflows (at least one character per line).
    for (char c : token) {
      if (!line.empty() && text_width(line + c, m) > max_width) {
        lines.push_back(line);
        line.clear();
      }
      line += c;
    }
    open = true;
  }
  if (open || !line.empty()) lines.push_back(line);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

struct Layout {
  Metrics m;
  std::vector<std::string> lines;
  CaptionBox box;
};

Layout layout(const std::string& utf8, PixelFormat format, int width, int height) {
  Layout l;
  l.m = metrics(height);
  const int max_width = std::max(1, width - 2 * l.m.pad);
  l.lines = wrap(caption_ascii(utf8), max_width, l.m);
  if (l.lines.empty() || width <= 0 || height <= 0) return l;
  const int max_lines = std::max(1, (height / 2 - 2 * l.m.pad) / l.m.line_height);
  if (static_cast<int>(l.lines.size()) > max_lines) {
    l.lines.resize(max_lines);
    std::string& last = l.lines.back();
    while (!last.empty() && text_width(last + "...", l.m) > max_width) last.pop_back();
    last += "...";
  }
  const int box_height = std::min(height, static_cast<int>(l.lines.size()) * l.m.line_height + 2 * l.m.pad);
  int top = height - box_height;
  if (is_yuv(format)) top &= ~1;  // whole 2x2 chroma samples
  l.box = CaptionBox{0, top, width, height - top};
  return l;
}

// Every pixel of the box darkened to about a third; alpha (the fourth byte) made opaque.
void darken_packed(uint8_t* plane, int stride, const CaptionBox& box, int n) {
  for (int y = box.y; y < box.y + box.height; ++y) {
    uint8_t* p = plane + static_cast<size_t>(y) * stride + static_cast<size_t>(box.x) * n;
    for (int x = 0; x < box.width; ++x, p += n) {
      for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>(p[c] * 85 / 256);
      if (n == 4) p[3] = 255;
    }
  }
}

// Luma darkened toward black (16 in limited range), as the RGB darkening would make it.
void darken_luma(uint8_t* plane, int stride, const CaptionBox& box, int black) {
  for (int y = box.y; y < box.y + box.height; ++y) {
    uint8_t* p = plane + static_cast<size_t>(y) * stride + box.x;
    for (int x = 0; x < box.width; ++x)
      if (p[x] > black) p[x] = static_cast<uint8_t>(black + (p[x] - black) * 85 / 256);
  }
}

// Chroma samples under the box set to neutral (128): the band is grey, the white text stays white.
void neutral_chroma(const OverlayFrame& f, const CaptionBox& box) {
  const int rows_begin = box.y / 2, rows_end = (box.y + box.height + 1) / 2;
  const int cols = (f.width + 1) / 2;
  if (f.format == PixelFormat::kNV12) {
    for (int y = rows_begin; y < rows_end; ++y) std::fill_n(f.planes[1] + static_cast<size_t>(y) * f.strides[1], 2 * cols, 128);
  } else {
    for (int plane = 1; plane <= 2; ++plane)
      for (int y = rows_begin; y < rows_end; ++y)
        std::fill_n(f.planes[plane] + static_cast<size_t>(y) * f.strides[plane], cols, 128);
  }
}

}  // namespace

std::string caption_ascii(const std::string& utf8) {
  std::string out;
  const auto* s = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(utf8.size());
  while (left > 0) {
    utf8proc_int32_t c = -1;
    utf8proc_ssize_t n = utf8proc_iterate(s, left, &c);
    if (n <= 0) {  // not UTF-8: one byte becomes '?'
      out += '?';
      n = 1;
    } else if (c == '\n') {
      out += '\n';
    } else if (c == '\t' || c == '\r') {
      out += ' ';
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      // other control characters are dropped
    } else if (const char* punct = ascii_punctuation(c)) {
      out += punct;
    } else {
      // Compatibility decomposition without marks: é -> e, ﬁ -> fi, … -> ..., no-break space -> space.
      utf8proc_int32_t parts[18];
      int boundclass = UTF8PROC_BOUNDCLASS_START;
      const utf8proc_ssize_t count = utf8proc_decompose_char(
          c, parts, 18, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_STRIPMARK), &boundclass);
      std::string ascii;
      for (utf8proc_ssize_t i = 0; count <= 18 && i < count; ++i) {
        if (parts[i] >= 0x20 && parts[i] < 0x7F) {
          ascii += static_cast<char>(parts[i]);
        } else {
          ascii.clear();
          break;
        }
      }
      out += ascii.empty() ? "?" : ascii;
    }
    s += n;
    left -= n;
  }
  return out;
}

std::vector<std::string> caption_lines(const std::string& utf8, int width, int height) {
  return layout(utf8, PixelFormat::kRGB, width, height).lines;
}

CaptionBox caption_box(const std::string& utf8, PixelFormat format, int width, int height) {
  return layout(utf8, format, width, height).box;
}

CaptionBox draw_caption(const OverlayFrame& f, const std::string& utf8) {
  const Layout l = layout(utf8, f.format, f.width, f.height);
  if (l.box.empty()) return l.box;
  const int n = channels(f.format);
  const bool yuv = is_yuv(f.format);
  if (yuv) {
    darken_luma(f.planes[0], f.strides[0], l.box, f.yuv_full_range ? 0 : 16);
    neutral_chroma(f, l.box);
  } else {
    darken_packed(f.planes[0], f.strides[0], l.box, n);
  }
  // The box alone as a Mat: OpenCV clips the text to it, so nothing outside it changes.
  cv::Mat picture(f.height, f.width, CV_8UC(n), f.planes[0], static_cast<size_t>(f.strides[0]));
  cv::Mat band = picture(cv::Rect(l.box.x, l.box.y, l.box.width, l.box.height));
  const double white = yuv && !f.yuv_full_range ? 235 : 255;
  // White in every channel order; for RGBA/BGRA the text is opaque.
  const cv::Scalar color(white, white, white, 255);
  for (size_t i = 0; i < l.lines.size(); ++i) {
    const int baseline = l.m.pad + static_cast<int>(i) * l.m.line_height + l.m.ascent;
    cv::putText(band, l.lines[i], cv::Point(l.m.pad, baseline), kFont, l.m.scale, color, l.m.thickness, cv::LINE_AA);
  }
  return l.box;
}

}  // namespace qwenvl::gst
