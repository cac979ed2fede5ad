// Input records for the bulk commands: a plain list (one address per line) or a CSV file with an
// `email` column (or --column NAME). Sans-I/O: bytes are fed in chunks of any size and each
// record comes out through a callback, so a 10-million-line input never sits in memory and a
// 1 MB line or binary garbage costs a bounded buffer and one error record, never the run.
#pragma once

#include <csv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace mxp::app {

enum class InputFormat : uint8_t { Auto, Lines, Csv };

// Why a record carries no usable field. The codes appear in output records as "error".
enum class RecordIssue : uint8_t {
  None,
  LineTooLong,    // a plain-list line longer than max_line: field holds its first max_line bytes
  RecordTooLong,  // a CSV record (or a line of one) longer than max_record: parser restarted
  MissingColumn,  // a CSV record with fewer fields than the address column's index
  UnclosedQuote,  // a CSV line whose quoted field is never closed: field read as the line shows
};
std::string_view to_string(RecordIssue i);

// Every view is valid only during the sink call.
struct Record {
  uint64_t number = 0;     // plain list: physical line; CSV: record number, header = 1
  std::string_view field;  // the address as given (line ending removed)
  RecordIssue issue = RecordIssue::None;
  // The whole record exactly as read, without its line ending (LF or CRLF), so that output
  // can carry the user's own columns. CSV: every field, quotes as in the input, a
  // multi-line quoted record with its inner line endings. Plain list: the same as field.
  // With an issue: LineTooLong, the kept first max_line bytes (== field); RecordTooLong, the
  // record's first max_record bytes at most; MissingColumn, the whole record.
  std::string_view raw;

  Record() = default;
  // Not an aggregate so that callers may leave raw out ({number, field, issue}) under -Wextra.
  Record(uint64_t n, std::string_view f, RecordIssue i = RecordIssue::None, std::string_view r = {})
      : number(n), field(f), issue(i), raw(r) {}
};

struct RecordOptions {
  InputFormat format = InputFormat::Auto;
  std::string column = "email";  // CSV column to read, matched case-insensitively
  bool column_given = false;     // --column was given: its absence is an up-front error
  size_t max_line = 1024;        // plain lists; RFC 5321's path limit is far below this
  size_t max_record = 1 << 20;   // CSV
};

class RecordReader {
 public:
  using Sink = std::function<void(const Record&)>;
  RecordReader(RecordOptions opts, Sink sink);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // Both return false on an up-front error (error() says which); records already emitted stand.
  bool feed(std::string_view bytes);
  bool finish();

  const std::string& error() const { return error_; }
  InputFormat format() const { return format_; }
  uint64_t records() const { return records_; }
  // CSV: the header line as read, without a UTF-8 BOM and without its line ending (a CSV is
  // only recognised by its header, so it always has one). Empty for plain lists and until the
  // first line has been seen.
  std::string_view header() const { return header_; }
  // CSV: the delimiter found in the header (',', ';' or TAB). ',' for plain lists.
  unsigned char delimiter() const { return delim_; }

 private:
  void on_line(std::string_view line, bool truncated);
  bool detect(std::string_view header);
  void csv_line(std::string_view line_with_lf, bool truncated);
  void reset_csv();
  void literal_record(std::string_view line, RecordIssue issue);
  void runaway();
  static void csv_field_cb(void* s, size_t len, void* self);
  static void csv_record_cb(int c, void* self);

  RecordOptions opts_;
  Sink sink_;
  InputFormat format_;
  std::string error_;
  std::string pending_;  // a line split across chunks (bounded by the cap)
  bool overflow_ = false;
  bool first_line_ = true;
  uint64_t lines_ = 0, records_ = 0;
  // CSV state
  csv_parser csv_{};
  bool csv_ready_ = false;
  unsigned char delim_ = ',';
  size_t column_index_ = 0, field_index_ = 0;
  bool have_field_ = false, record_ended_ = false, in_header_ = false;
  bool in_record_ = false;  // a record spans lines: its earlier lines are in raw_
  std::string field_;
  std::string header_;
  std::string raw_;           // earlier lines of a record spanning lines (bounded by the cap)
  std::string_view raw_cur_;  // the current record's raw text, handed to the sink
  std::string header_match_;  // during detection: columns seen
  bool header_found_ = false;
};

}  // namespace mxp::app
