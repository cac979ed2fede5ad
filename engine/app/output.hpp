// Output records of `mxprobe verify`: JSON Lines (the record of docs/records.md) or CSV. CSV output
// of a CSV input keeps the user's own columns first, as they were (same delimiter), then ours;
// one of ours whose name the input already uses is called mxprobe_NAME.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/result.hpp"

namespace mxp::app {

enum class OutputFormat : uint8_t { Jsonl, Csv };

class RecordFormatter {
 public:
  RecordFormatter(OutputFormat format, bool transcripts)
      : format_(format), transcripts_(transcripts) {}

  // The input is CSV with this header line (as read, no line ending) and delimiter: its columns
  // come first in CSV output. Not called for plain lists.
  void set_input_header(std::string_view header, unsigned char delimiter);

  // The CSV header line with CRLF ("" for JSON Lines).
  std::string header() const;
  // Appends one record (with its line ending). `raw`: the input record as read (CSV input);
  // empty: the user's columns are left empty (a record too long to keep).
  void append(const pipeline::Result& r, std::string_view raw, std::string& out) const;

  OutputFormat format() const { return format_; }
  bool keeps_input_columns() const { return keep_; }

  // Our CSV column names, in order.
  static const std::vector<std::string_view>& columns();
  // The fields of one CSV line (RFC 4180 quoting, the given delimiter) through libcsv.
  static std::vector<std::string> split_csv_line(std::string_view line, unsigned char delimiter);

 private:
  void field(std::string& out, std::string_view v, bool first) const;

  OutputFormat format_;
  bool transcripts_;
  bool keep_ = false;
  std::string input_header_;
  size_t input_columns_ = 1;
  unsigned char delim_ = ',';
  std::vector<std::string> our_names_;
};

}  // namespace mxp::app
