// POSIX file plumbing for the bulk commands: big reads (gzip decompressed on the fly), buffered
// writes, honest errors (core::Expected: a value, or the message to show the user).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace mxp::app {

// An input opened from a path or "-" (stdin). Gzip input (found by its magic bytes 1f 8b,
// whatever the name, pipes included) is decompressed on the fly, concatenated members too; a
// corrupt or truncated gzip stream is a read error, never a silently short input.
class InputFile {
 public:
  InputFile();
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // The error: "cannot open input 'PATH': ...".
  core::Expected<void, std::string> open(const std::string& path);
  // Reads up to cap bytes (decompressed) into buf: the bytes read, 0 at the end, or the error
  // ("read error: ..." or "gzip: ... at byte offset N").
  core::Expected<size_t, std::string> read(char* buf, size_t cap);
  // The input's size on disk (compressed for gzip); 0 when unknown (pipes).
  uint64_t size() const { return size_; }
  // Bytes of the input itself (compressed for gzip) consumed so far: consumed() / size() is
  // the share read, for plain and gzip files alike. Plain files: the bytes returned.
  uint64_t consumed() const { return consumed_; }
  // Whether the input is gzip; known after the first read().
  bool gzip() const { return gz_ != nullptr; }
  // Closes the file and frees the gzip buffers (a finished job of `serve` keeps no input open).
  void close();

 private:
  struct Gzip;
  core::Expected<size_t, std::string> read_fd(char* buf, size_t cap);
  core::Expected<void, std::string> probe();
  core::Expected<size_t, std::string> read_gzip(char* buf, size_t cap);

  int fd_ = -1;
  bool owned_ = false;
  bool probed_ = false;
  uint64_t size_ = 0, consumed_ = 0;
  char head_[2] = {};  // the bytes read to look for the gzip magic, until returned
  size_t head_len_ = 0, head_pos_ = 0;
  std::unique_ptr<Gzip> gz_;
};

// Untrusted bytes (server replies, transcripts, input text) made safe for a terminal or a log:
// control bytes (C0, DEL, and C1 as UTF-8), backslash and invalid UTF-8 become \xNN escapes;
// \t, \r and \n become \t, \r and \n. ESC sequences and OSC titles cannot reach the terminal.
// Valid UTF-8 text is kept as is.
std::string printable(std::string_view bytes);

// An output opened from a path or "-" (stdout), written in large blocks.
class OutputFile {
 public:
  // The error: "cannot open output 'PATH': ...".
  core::Expected<void, std::string> open(const std::string& path);
  ~OutputFile();
  // Writes all of data, or says why not ("cannot write PATH: ...").
  core::Expected<void, std::string> write(std::string_view data);
  core::Expected<void, std::string> close();

 private:
  int fd_ = -1;
  bool owned_ = false;
  std::string path_;  // named in errors ("-": stdout)
};

}  // namespace mxp::app
