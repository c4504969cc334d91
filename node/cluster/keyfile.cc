// Cluster key files (cluster.h): parsing with libsodium's constant-time base64 decoder, and
// `APP keygen`.
#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

#include "node/cluster/cluster.h"

namespace dog::node::cluster {

namespace {

using Kind = ClusterError::Kind;

void init_sodium() {
  if (sodium_init() < 0) throw ClusterError(Kind::kOther, "libsodium failed to initialise");
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

std::vector<std::array<uint8_t, 32>> parse_key_text(std::string_view text,
                                                    const std::string& path) {
  init_sodium();
  std::vector<std::array<uint8_t, 32>> keys;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const bool alphabet = line.find_first_not_of(
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
                          std::string_view::npos;
    if (!alphabet) throw ClusterError(Kind::kKeyNotBase64, where + ": cluster key is not base64");
    // A 32-byte key is 44 base64 characters; anything much longer cannot be one.
    uint8_t buf[64];
    size_t len = 0;
    const char* end = nullptr;
    const int rc = sodium_base642bin(buf, sizeof buf, line.data(), line.size(), nullptr, &len, &end,
                                     sodium_base64_VARIANT_ORIGINAL);
    if (rc != 0 || end != line.data() + line.size()) {
      // Too long for the buffer is also a length problem, not a syntax one: tell which.
      if (rc != 0 && line.size() > 4 * sizeof buf / 3 + 4)
        throw ClusterError(Kind::kKeyWrongLength,
                           where + ": cluster key is too long (want 32 bytes, base64)");
      throw ClusterError(Kind::kKeyNotBase64, where + ": cluster key is not base64");
    }
    if (len != 32)
      throw ClusterError(Kind::kKeyWrongLength, where + ": cluster key is " + std::to_string(len) +
                                                    " bytes, want 32 (make one with `keygen`)");
    std::array<uint8_t, 32> k;
    std::memcpy(k.data(), buf, 32);
    sodium_memzero(buf, sizeof buf);
    keys.push_back(k);
  }
  if (keys.empty())
    throw ClusterError(Kind::kKeyEmpty, path + ": no cluster key in file (make one with `keygen`)");
  return keys;
}

std::vector<std::array<uint8_t, 32>> read_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ClusterError(Kind::kKeyUnreadable,
                       "cannot read cluster key file " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw ClusterError(Kind::kKeyUnreadable, "cluster key file " + path + " is not a regular file");
  // Read at most the cap plus one byte: a larger file is refused without being loaded.
  std::string text(kMaxKeyFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad())
    throw ClusterError(Kind::kKeyUnreadable, "cannot read cluster key file " + path);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes)
    throw ClusterError(Kind::kKeyUnreadable, "cluster key file " + path + " is larger than " +
                                                 std::to_string(kMaxKeyFileBytes) + " bytes");
  auto keys = parse_key_text(text, path);
  sodium_memzero(text.data(), text.size());
  return keys;
}

std::string generate_key() {
  init_sodium();
  uint8_t key[32];
  randombytes_buf(key, sizeof key);
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(key, sizeof key);
  return std::string(b64);
}

}  // namespace dog::node::cluster
