// Cluster key rotation on one node (cluster.h: change_key, keys) and key-file rewriting.
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "node/cluster/cluster_impl.h"

namespace dog::node::cluster {

void write_key_file(const std::string& path, const std::vector<std::array<uint8_t, 32>>& keys) {
  using Kind = ClusterError::Kind;
  std::string text = "# dog cluster keys: the first encrypts, every line decrypts (rewritten by key rotation)\n";
  for (const auto& k : keys) {
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, k.data(), k.size(), sodium_base64_VARIANT_ORIGINAL);
    text += b64;
    text += '\n';
    sodium_memzero(b64, sizeof b64);
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto fail = [&](const std::string& step) {
    const std::string why = std::strerror(errno);
    sodium_memzero(text.data(), text.size());
    ::unlink(tmp.c_str());
    throw ClusterError(Kind::kKeyUnreadable, "cannot " + step + " " + tmp + ": " + why);
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("create");
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fail("write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("sync");
  }
  ::close(fd);
  sodium_memzero(text.data(), text.size());
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw ClusterError(Kind::kKeyUnreadable, "cannot replace " + path + ": " + why);
  }
}

Cluster::KeyChange Cluster::change_key(KeyOp op, const std::array<uint8_t, 32>& key) {
  using Refusal = KeyChange::Refusal;
  auto& swim = impl_->host->keyring();
  auto& rpc = *impl_->rpc_keyring;
  KeyChange out;
  switch (op) {
    case KeyOp::kInstall:
      swim.install(key);  // false: already installed, which is fine
      rpc.install(key);
      break;
    case KeyOp::kUse:
      if (!swim.installed(key) || !rpc.installed(key)) {
        out.refusal = Refusal::kNotInstalled;
        return out;
      }
      swim.use(key);
      rpc.use(key);
      break;
    case KeyOp::kRemove:
      if (swim.is_primary(key) || rpc.is_primary(key)) {
        out.refusal = Refusal::kIsPrimary;
        return out;
      }
      swim.remove(key);
      rpc.remove(key);
      break;
  }
  try {
    write_key_file(impl_->opts.key_file, keys());
  } catch (const ClusterError& e) {
    out.file_error = e.what();
  }
  return out;
}

std::vector<std::array<uint8_t, 32>> Cluster::keys() const { return impl_->host->keyring().keys(); }

}  // namespace dog::node::cluster
