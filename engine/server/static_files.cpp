// Static files (static_dir): GET/HEAD of files under one root, public by design (the console
// page must load before its user can type the token). Traversal is refused twice: no segment
// may start with a dot, and the realpath of the file must stay inside the root.
#include "server/conn.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/strings.hpp"

namespace mxp::server {

namespace {

constexpr off_t kMaxStaticFile = 64 << 20;

using core::lower;

std::string_view content_type(std::string_view path) {
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  std::string ext;
  for (const char c : path.substr(dot + 1))
    ext += lower(c);
  if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "wasm") return "application/wasm";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "png") return "image/png";
  if (ext == "json") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "ico") return "image/x-icon";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

bool read_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxStaticFile) {
    ::close(fd);
    return false;
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return true;
}

}  // namespace

void HttpServer::static_dir(std::string root) {
  char* real = ::realpath(root.c_str(), nullptr);
  static_root_ = real != nullptr ? real : "";
  std::free(real);
  if (static_root_ == "/") static_root_.clear();  // serving the whole file system: no
}

bool HttpServer::serve_static(const http::Request& req, http::Response& out) const {
  std::string_view path = req.path;
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos)
    return false;
  // No "..", and no hidden files (".env", ".git/"): refuse any segment starting with a dot.
  for (size_t i = 1; i < path.size(); ++i)
    if (path[i] == '.' && path[i - 1] == '/') return false;
  if (path.find('\\') != std::string_view::npos) return false;
  std::string want = static_root_;
  want += path;
  if (want.back() == '/') want += "index.html";
  char* real = ::realpath(want.c_str(), nullptr);
  if (real == nullptr) return false;
  std::string resolved = real;
  std::free(real);
  // The resolved file (symlinks followed) must still be inside the root.
  if (resolved.size() <= static_root_.size() ||
      resolved.compare(0, static_root_.size(), static_root_) != 0 ||
      resolved[static_root_.size()] != '/')
    return false;
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0) return false;
  if (S_ISDIR(st.st_mode)) return false;  // directories: only "dir/" gets its index.html
  std::string body;
  if (!read_file(resolved, body)) return false;
  out.status = 200;
  out.headers = {{"Content-Type", std::string(content_type(resolved))},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Cache-Control", "no-cache"}};
  out.body = std::move(body);
  return true;
}

}  // namespace mxp::server
