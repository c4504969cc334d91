#include "node/http/ws_codec.h"

#include "dog/websocket.h"

#include <cstring>

namespace dog::http::ws {

bool valid_close_code(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;  // registered and private-use ranges
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008:
    case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
      return true;
    default:
      return false;
  }
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // Fast path: 8 ASCII bytes at a time.
    if (end - p >= 8) {
      uint64_t chunk;
      std::memcpy(&chunk, p, 8);
      if ((chunk & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
      if (c < 0xC2) return false;  // overlong 2-byte form
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
      if (c > 0xF4) return false;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
    if (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    p += n + 1;
  }
  return true;
}

void Decoder::fail(FrameSink& sink, uint16_t code, std::string_view why) {
  if (failed_) return;
  failed_ = true;
  message_.clear();
  message_.shrink_to_fit();
  control_.clear();
  sink.on_protocol_error(code, why);
}

bool Decoder::start_frame(FrameSink& sink) {
  uint8_t b0 = header_[0], b1 = header_[1];
  fin_ = b0 & 0x80;
  if (b0 & 0x70) return fail(sink, close_code::kProtocolError, "reserved bits set"), false;
  opcode_ = static_cast<Opcode>(b0 & 0x0F);
  masked_ = b1 & 0x80;
  if (role_ == Role::kServer && !masked_)
    return fail(sink, close_code::kProtocolError, "client frame not masked"), false;
  if (role_ == Role::kClient && masked_)
    return fail(sink, close_code::kProtocolError, "server frame masked"), false;
  uint64_t len = b1 & 0x7F;
  size_t pos = 2;
  if (len == 126) {
    len = (uint64_t(header_[2]) << 8) | header_[3];
    pos = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | header_[2 + i];
    if (len >> 63) return fail(sink, close_code::kProtocolError, "length has top bit set"), false;
    pos = 10;
  }
  if (masked_) std::memcpy(mask_, header_ + pos, 4);
  remaining_ = len;
  frame_pos_ = 0;

  bool control = (b0 & 0x08) != 0;
  if (control) {
    if (opcode_ != Opcode::kClose && opcode_ != Opcode::kPing && opcode_ != Opcode::kPong)
      return fail(sink, close_code::kProtocolError, "reserved control opcode"), false;
    if (!fin_) return fail(sink, close_code::kProtocolError, "fragmented control frame"), false;
    if (len > 125) return fail(sink, close_code::kProtocolError, "control frame over 125 bytes"), false;
    control_.clear();
    return true;
  }
  switch (opcode_) {
    case Opcode::kContinuation:
      if (!in_message_) return fail(sink, close_code::kProtocolError, "continuation without a message"), false;
      break;
    case Opcode::kText:
    case Opcode::kBinary:
      if (in_message_) return fail(sink, close_code::kProtocolError, "new message inside a fragmented one"), false;
      in_message_ = true;
      message_text_ = opcode_ == Opcode::kText;
      message_.clear();
      break;
    default:
      return fail(sink, close_code::kProtocolError, "reserved data opcode"), false;
  }
  if (message_.size() + len > max_message_)
    return fail(sink, close_code::kTooBig, "message exceeds the size limit"), false;
  message_.reserve(message_.size() + len);
  return true;
}

void Decoder::finish_frame(FrameSink& sink) {
  switch (opcode_) {
    case Opcode::kPing:
      sink.on_ping(control_);
      return;
    case Opcode::kPong:
      sink.on_pong(control_);
      return;
    case Opcode::kClose: {
      if (control_.size() == 1) return fail(sink, close_code::kProtocolError, "close payload of 1 byte");
      if (control_.empty()) return sink.on_close(close_code::kNoStatus, {});
      uint16_t code = (uint16_t(uint8_t(control_[0])) << 8) | uint8_t(control_[1]);
      if (!valid_close_code(code)) return fail(sink, close_code::kProtocolError, "invalid close code");
      std::string_view reason(control_.data() + 2, control_.size() - 2);
      if (!valid_utf8(reason)) return fail(sink, close_code::kInvalidData, "close reason is not UTF-8");
      return sink.on_close(code, reason);
    }
    default:
      break;
  }
  if (!fin_) return;  // more fragments follow
  in_message_ = false;
  if (message_text_ && !valid_utf8(message_))
    return fail(sink, close_code::kInvalidData, "text message is not valid UTF-8");
  sink.on_message(message_, message_text_);
  if (message_.capacity() > (64 << 10)) std::string().swap(message_);  // one big message must not pin memory
}

void Decoder::feed(std::string_view bytes, FrameSink& sink) {
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  while (p < end && !failed_) {
    if (!in_payload_) {
      // Accumulate the header: 2 bytes, then the extended length and mask it announces.
      header_[header_have_++] = static_cast<uint8_t>(*p++);
      if (header_have_ < 2) continue;
      size_t need = 2;
      uint8_t l7 = header_[1] & 0x7F;
      if (l7 == 126) need += 2;
      else if (l7 == 127) need += 8;
      if (header_[1] & 0x80) need += 4;
      if (header_have_ < need) continue;
      header_have_ = 0;
      if (!start_frame(sink)) return;
      in_payload_ = true;
    }
    // Payload: copy (and unmask) as much of this frame as the input holds.
    size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, end - p));
    bool control = (static_cast<uint8_t>(opcode_) & 0x08) != 0;
    std::string& dst = control ? control_ : message_;
    size_t at = dst.size();
    dst.append(p, take);
    if (masked_) {
      char* d = dst.data() + at;
      for (size_t i = 0; i < take; ++i) d[i] ^= mask_[(frame_pos_ + i) & 3];
    }
    p += take;
    frame_pos_ += take;
    remaining_ -= take;
    if (remaining_ == 0) {
      in_payload_ = false;
      finish_frame(sink);
    }
  }
}

void encode_frame(std::string& out, Opcode op, std::string_view payload, bool fin, Role role,
                  uint32_t mask_key) {
  bool mask = role == Role::kClient;
  uint8_t b0 = (fin ? 0x80 : 0) | static_cast<uint8_t>(op);
  uint8_t mbit = mask ? 0x80 : 0;
  size_t n = payload.size();
  char hdr[14];
  size_t h = 0;
  hdr[h++] = static_cast<char>(b0);
  if (n < 126) {
    hdr[h++] = static_cast<char>(mbit | n);
  } else if (n <= 0xFFFF) {
    hdr[h++] = static_cast<char>(mbit | 126);
    hdr[h++] = static_cast<char>(n >> 8);
    hdr[h++] = static_cast<char>(n);
  } else {
    hdr[h++] = static_cast<char>(mbit | 127);
    for (int i = 7; i >= 0; --i) hdr[h++] = static_cast<char>(uint64_t(n) >> (8 * i));
  }
  uint8_t key[4] = {uint8_t(mask_key >> 24), uint8_t(mask_key >> 16), uint8_t(mask_key >> 8),
                    uint8_t(mask_key)};
  if (mask) {
    std::memcpy(hdr + h, key, 4);
    h += 4;
  }
  out.append(hdr, h);
  size_t at = out.size();
  out.append(payload);
  if (mask) {
    char* d = out.data() + at;
    for (size_t i = 0; i < n; ++i) d[i] ^= key[i & 3];
  }
}

std::string close_payload(uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  if (reason.size() > 123) {
    // Truncate on a UTF-8 boundary so the reason stays valid.
    size_t cut = 123;
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  p.append(reason);
  return p;
}

}  // namespace dog::http::ws

namespace dog::http {

bool valid_utf8(std::string_view s) { return ws::valid_utf8(s); }

SharedFrames make_frames(std::string_view payload, bool text) {
  auto frames = std::make_shared<std::string>();
  frames->reserve(payload.size() + 14);
  ws::encode_frame(*frames, text ? ws::Opcode::kText : ws::Opcode::kBinary, payload);
  return frames;
}

}  // namespace dog::http
