#include "app/io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace mxp::app {
namespace {

constexpr size_t kGzipIn = 256 * 1024;  // compressed bytes per read(2)

using Status = core::Expected<void, std::string>;
using Bytes = core::Expected<size_t, std::string>;

}  // namespace

struct InputFile::Gzip {
  z_stream zs{};
  bool ready = false;
  std::unique_ptr<Bytef[]> in = std::make_unique<Bytef[]>(kGzipIn);
  uint64_t in_total = 0;    // compressed bytes read from the file
  bool in_eof = false;      // the file has no more
  bool member_open = true;  // inside a gzip member (or expecting the first one)
  std::string error;        // a failure is final: every later read repeats it
  ~Gzip() {
    if (ready) inflateEnd(&zs);
  }
};

InputFile::InputFile() = default;

Status InputFile::open(const std::string& path) {
  if (path == "-") {
    fd_ = 0;
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      return core::unexpected("cannot open input '" + path + "': " + std::strerror(errno));
    owned_ = true;
  }
  struct stat st {};
  if (fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = static_cast<uint64_t>(st.st_size);
  return {};
}

InputFile::~InputFile() {
  close();
}

void InputFile::close() {
  if (owned_ && fd_ >= 0) ::close(fd_);
  fd_ = -1;
  owned_ = false;
  gz_.reset();
}

Bytes InputFile::read_fd(char* buf, size_t cap) {
  for (;;) {
    ssize_t n = ::read(fd_, buf, cap);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    return core::unexpected(std::string("read error: ") + std::strerror(errno));
  }
}

// Reads the first two bytes (fewer only at the end of the input) to look for the gzip magic.
Status InputFile::probe() {
  while (head_len_ < sizeof head_) {
    auto n = read_fd(head_ + head_len_, sizeof head_ - head_len_);
    if (!n) return core::unexpected(n.error());
    if (*n == 0) break;
    head_len_ += *n;
  }
  probed_ = true;
  if (head_len_ < 2 || static_cast<unsigned char>(head_[0]) != 0x1f ||
      static_cast<unsigned char>(head_[1]) != 0x8b)
    return {};
  auto gz = std::make_unique<Gzip>();
  if (inflateInit2(&gz->zs, 16 + MAX_WBITS) != Z_OK)  // gzip only, no zlib or raw deflate
    return core::unexpected(std::string("gzip: cannot initialise zlib"));
  gz->ready = true;
  std::memcpy(gz->in.get(), head_, head_len_);
  gz->zs.next_in = gz->in.get();
  gz->zs.avail_in = static_cast<uInt>(head_len_);
  gz->in_total = head_len_;
  head_len_ = 0;
  gz_ = std::move(gz);
  return {};
}

Bytes InputFile::read(char* buf, size_t cap) {
  if (!probed_)
    if (auto p = probe(); !p) return core::unexpected(p.error());
  if (gz_) return read_gzip(buf, cap);
  if (head_pos_ < head_len_) {
    // Returned alone: reading more could block a pipe whose writer waits for our output.
    size_t n = std::min(cap, head_len_ - head_pos_);
    std::memcpy(buf, head_ + head_pos_, n);
    head_pos_ += n;
    consumed_ += n;
    return n;
  }
  auto n = read_fd(buf, cap);
  if (n) consumed_ += *n;
  return n;
}

// Inflates until some output is ready, a member boundary at the end of the input, or an error.
// Members follow each other (as `cat a.gz b.gz` makes); zero bytes between or after members
// are padding and skipped, as gzip(1) does; anything else must be a gzip member.
Bytes InputFile::read_gzip(char* buf, size_t cap) {
  Gzip& g = *gz_;
  if (!g.error.empty()) return core::unexpected(g.error);
  z_stream& zs = g.zs;
  cap = std::min<size_t>(cap, 1u << 30);
  zs.next_out = reinterpret_cast<Bytef*>(buf);
  zs.avail_out = static_cast<uInt>(cap);
  auto fail = [&](std::string what) -> Bytes {
    g.error = "gzip: " + what + " at byte offset " + std::to_string(consumed_);
    return core::unexpected(g.error);
  };
  while (cap > 0 && zs.avail_out == cap) {
    if (zs.avail_in == 0 && !g.in_eof) {
      auto n = read_fd(reinterpret_cast<char*>(g.in.get()), kGzipIn);
      if (!n) return n;
      if (*n == 0) g.in_eof = true;
      zs.next_in = g.in.get();
      zs.avail_in = static_cast<uInt>(*n);
      g.in_total += *n;
    }
    if (!g.member_open) {
      while (zs.avail_in > 0 && *zs.next_in == 0) {
        ++zs.next_in;
        --zs.avail_in;
      }
      consumed_ = g.in_total - zs.avail_in;
      if (zs.avail_in == 0) {
        if (g.in_eof) break;  // the clean end
        continue;
      }
      inflateReset(&zs);
      g.member_open = true;
    }
    if (zs.avail_in == 0) return fail("unexpected end of input (truncated file)");
    int rc = inflate(&zs, Z_NO_FLUSH);
    consumed_ = g.in_total - zs.avail_in;
    if (rc == Z_STREAM_END)
      g.member_open = false;
    else if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_in == 0))
      return fail(zs.msg ? zs.msg : zError(rc));
  }
  return static_cast<size_t>(cap - zs.avail_out);
}

std::string printable(std::string_view in) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(in.size());
  auto esc = [&](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  };
  for (size_t i = 0; i < in.size();) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      if (c == '\t')
        out += "\\t";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\n')
        out += "\\n";
      else if (c < 0x20 || c == 0x7f || c == '\\')
        esc(c);
      else
        out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A UTF-8 sequence: well formed (no overlong form, surrogate or value past U+10FFFF) and not
    // a C1 control (U+0080..U+009F), else its first byte is escaped and the rest looked at again.
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    bool ok = len != 0 && c <= 0xf4 && i + len <= in.size();
    uint32_t cp = ok ? (c & (0x7f >> len)) : 0;
    for (size_t k = 1; ok && k < len; ++k) {
      const auto d = static_cast<unsigned char>(in[i + k]);
      ok = (d & 0xc0) == 0x80;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (ok)
      ok = !(len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) &&
           !(len == 4 && (cp < 0x10000 || cp > 0x10ffff)) && !(cp >= 0x80 && cp <= 0x9f);
    if (!ok) {
      esc(c);
      ++i;
      continue;
    }
    out.append(in.substr(i, len));
    i += len;
  }
  return out;
}

Status OutputFile::open(const std::string& path) {
  path_ = path == "-" ? "standard output" : path;
  if (path == "-") {
    fd_ = 1;
    return {};
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    return core::unexpected("cannot open output '" + path + "': " + std::strerror(errno));
  owned_ = true;
  return {};
}

OutputFile::~OutputFile() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

Status OutputFile::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return core::unexpected("cannot write " + path_ + ": " + std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Status OutputFile::close() {
  if (!owned_ || fd_ < 0) return {};
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0)
    return core::unexpected("cannot write " + path_ + " (on close): " + std::strerror(errno));
  return {};
}

}  // namespace mxp::app
