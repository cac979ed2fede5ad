#include "app/io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mxp::app {

bool InputFile::open(const std::string& path, std::string& err) {
  if (path == "-") {
    fd_ = 0;
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      err = "cannot open input '" + path + "': " + std::strerror(errno);
      return false;
    }
    owned_ = true;
  }
  struct stat st {};
  if (fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = static_cast<uint64_t>(st.st_size);
  return true;
}

InputFile::~InputFile() {
  if (owned_) ::close(fd_);
}

long InputFile::read(char* buf, size_t cap, std::string& err) {
  for (;;) {
    ssize_t n = ::read(fd_, buf, cap);
    if (n >= 0) return static_cast<long>(n);
    if (errno == EINTR) continue;
    err = std::string("read error: ") + std::strerror(errno);
    return -1;
  }
}

bool OutputFile::open(const std::string& path, std::string& err) {
  if (path == "-") {
    fd_ = 1;
    return true;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    err = "cannot open output '" + path + "': " + std::strerror(errno);
    return false;
  }
  owned_ = true;
  return true;
}

OutputFile::~OutputFile() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

bool OutputFile::write(std::string_view data, std::string& err) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      err = std::string("write error: ") + std::strerror(errno);
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool OutputFile::close(std::string& err) {
  if (!owned_ || fd_ < 0) return true;
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    err = std::string("close error: ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace mxp::app
