// Plain POSIX file plumbing for the bulk commands: big reads, buffered writes, honest errors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mxp::app {

// An input opened from a path or "-" (stdin). size() is 0 when unknown (pipes).
class InputFile {
 public:
  bool open(const std::string& path, std::string& err);
  ~InputFile();
  // Reads up to cap bytes into buf; returns bytes read, 0 at end, -1 on error (err set).
  long read(char* buf, size_t cap, std::string& err);
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  bool owned_ = false;
  uint64_t size_ = 0;
};

// An output opened from a path or "-" (stdout), written in large blocks.
class OutputFile {
 public:
  bool open(const std::string& path, std::string& err);
  ~OutputFile();
  // Writes all of data; false on error (err set).
  bool write(std::string_view data, std::string& err);
  bool close(std::string& err);

 private:
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace mxp::app
