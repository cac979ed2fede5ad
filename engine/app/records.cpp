#include "app/records.hpp"

#include <algorithm>
#include <cstring>

#include "core/strings.hpp"

namespace mxp::app {
namespace {

// Header names are matched trimmed and ASCII-case-insensitively ("Email", " EMAIL ").
bool iequals_trimmed(std::string_view a, std::string_view b) {
  // Leading space and tab; trailing space, tab and the CR of a CRLF line.
  const auto trim = [](std::string_view s) { return core::trim_back(core::trim(s), " \t\r"); };
  return core::iequals(trim(a), trim(b));
}

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// libcsv ends a record at CR as well as LF, which would let a bare CR split a line into two
// records. Lines are cut at LF before they reach libcsv, so LF alone ends a record and a CR is
// blank space: trimmed after an unquoted field or a closing quote, kept inside quotes.
int csv_is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r';
}
int csv_is_term(unsigned char c) {
  return c == '\n';
}

void csv_setup(csv_parser& p, unsigned char delim) {
  csv_set_delim(&p, delim);
  csv_set_space_func(&p, csv_is_space);
  csv_set_term_func(&p, csv_is_term);
}

// A line libcsv skips between records: blank space only (a delimiter is not blank).
bool csv_blank(std::string_view line, unsigned char delim) {
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    if (!csv_is_space(c) || c == delim) return false;
  }
  return true;
}

// How one line stands under RFC 4180 quoting (libcsv's leniency on blank space kept), starting
// inside a quoted field or not: the record ends with it, a quoted field is still open at its
// end (a field spanning lines), or a quoted field is closed and followed by more than blank
// space before the delimiter, as in `"john"@d1.test`: libcsv would keep reading that field
// as quoted, and swallow the lines after it.
enum class QuoteScan : uint8_t { Ends, Open, Malformed };
QuoteScan scan_quotes(std::string_view line, unsigned char delim, bool in_quotes) {
  size_t i = 0;
  const size_t n = line.size();
  auto blank = [&](size_t k) {
    auto c = static_cast<unsigned char>(line[k]);
    return c != delim && csv_is_space(c);
  };
  for (;;) {
    if (!in_quotes) {  // at the start of a field
      while (i < n && blank(i))
        ++i;
      if (i < n && line[i] == '"') {
        in_quotes = true;
        ++i;
        continue;
      }
      while (i < n && static_cast<unsigned char>(line[i]) != delim)
        ++i;  // an unquoted field: a quote inside it is a character like any other
      if (i >= n) return QuoteScan::Ends;
      ++i;
      continue;
    }
    while (i < n && line[i] != '"')
      ++i;
    if (i >= n) return QuoteScan::Open;
    if (i + 1 < n && line[i + 1] == '"') {  // "" inside quotes
      i += 2;
      continue;
    }
    ++i;  // the closing quote: blank space, then the delimiter or the end of the line
    in_quotes = false;
    while (i < n && blank(i))
      ++i;
    if (i >= n) return QuoteScan::Ends;
    if (static_cast<unsigned char>(line[i]) != delim) return QuoteScan::Malformed;
    ++i;
  }
}

std::string_view strip_cr(std::string_view s) {
  if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view to_string(RecordIssue i) {
  switch (i) {
    case RecordIssue::None:
      return "none";
    case RecordIssue::LineTooLong:
      return "line_too_long";
    case RecordIssue::RecordTooLong:
      return "record_too_long";
    case RecordIssue::MissingColumn:
      return "missing_column";
    case RecordIssue::UnclosedQuote:
      return "unclosed_quote";
  }
  return "?";
}

RecordReader::RecordReader(RecordOptions opts, Sink sink)
    : opts_(std::move(opts)), sink_(std::move(sink)), format_(opts_.format) {}

RecordReader::~RecordReader() {
  if (csv_ready_) csv_free(&csv_);
}

bool RecordReader::feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  // Until the format is known the first line may be a CSV header: allow it the CSV cap.
  size_t cap = format_ == InputFormat::Lines ? opts_.max_line : opts_.max_record;
  while (!bytes.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(bytes.data(), '\n', bytes.size()));
    size_t part = nl ? static_cast<size_t>(nl - bytes.data()) : bytes.size();
    if (nl && pending_.empty() && !overflow_ && part <= cap) {
      on_line(bytes.substr(0, part), false);  // the common case: no copy
    } else {
      size_t room = cap > pending_.size() ? cap - pending_.size() : 0;
      if (part > room) overflow_ = true;
      pending_.append(bytes.data(), std::min(part, room));
      if (nl) {
        on_line(pending_, overflow_);
        pending_.clear();
        overflow_ = false;
      }
    }
    if (!error_.empty()) return false;
    cap = format_ == InputFormat::Lines ? opts_.max_line : opts_.max_record;
    bytes.remove_prefix(nl ? part + 1 : part);
  }
  return true;
}

bool RecordReader::finish() {
  if (!error_.empty()) return false;
  if (!pending_.empty() || overflow_) {
    on_line(pending_, overflow_);
    pending_.clear();
    overflow_ = false;
  }
  if (format_ == InputFormat::Csv && csv_ready_) {
    while (in_record_)
      runaway();  // a quoted field left open at the end
    csv_fini(&csv_, csv_field_cb, csv_record_cb, this);
    raw_.clear();
    in_record_ = false;
  }
  if (first_line_ && opts_.column_given) {
    error_ = "input is empty: no header with column '" + opts_.column + "'";
  }
  return error_.empty();
}

void RecordReader::on_line(std::string_view line, bool truncated) {
  if (first_line_) {
    first_line_ = false;
    if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
    if (format_ != InputFormat::Lines) {
      if (detect(line)) {
        format_ = InputFormat::Csv;
        header_.assign(strip_cr(line));
        records_ = 1;  // the header is record 1, so record numbers match spreadsheet rows
        return;
      }
      if (format_ == InputFormat::Csv || opts_.column_given) {
        error_ = "no column named '" + opts_.column + "' in the CSV header";
        return;
      }
      format_ = InputFormat::Lines;
    }
  }
  if (format_ == InputFormat::Csv) {
    csv_line(line, truncated);
    return;
  }
  ++lines_;
  ++records_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (truncated || line.size() > opts_.max_line) {
    line = line.substr(0, opts_.max_line);
    sink_(Record{lines_, line, RecordIssue::LineTooLong, line});
    return;
  }
  sink_(Record{lines_, line, RecordIssue::None, line});
}

// Finds the address column in a header line, trying the usual delimiters. Uses libcsv so that
// quoted header names are handled like the data.
bool RecordReader::detect(std::string_view header) {
  for (unsigned char d : {',', ';', '\t'}) {
    csv_parser p;
    if (csv_init(&p, 0) != 0) return false;
    csv_setup(p, d);
    in_header_ = true;
    header_found_ = false;
    field_index_ = 0;
    csv_parse(&p, header.data(), header.size(), csv_field_cb, nullptr, this);
    csv_fini(&p, csv_field_cb, nullptr, this);
    csv_free(&p);
    in_header_ = false;
    if (header_found_) {
      delim_ = d;
      reset_csv();
      return true;
    }
  }
  return false;
}

void RecordReader::reset_csv() {
  if (csv_ready_) csv_free(&csv_);
  csv_init(&csv_, 0);  // lenient: real lists have stray quotes; libcsv recovers by itself
  csv_setup(csv_, delim_);
  csv_ready_ = true;
  field_index_ = 0;
  have_field_ = false;
  in_record_ = false;
  raw_.clear();
}

void RecordReader::csv_line(std::string_view line, bool truncated) {
  if (truncated) {
    // The rest of this line is gone: report the record as kept, then start afresh.
    std::string_view raw = line;
    if (in_record_) raw = raw_.append(1, '\n').append(line);
    sink_(Record{++records_, {}, RecordIssue::RecordTooLong, raw.substr(0, opts_.max_record)});
    reset_csv();
    return;
  }
  if (!in_record_ && csv_blank(line, delim_)) return;  // libcsv would skip it too
  switch (scan_quotes(line, delim_, in_record_)) {
    case QuoteScan::Malformed:
      if (in_record_) {
        // The open quote was a stray one: its lines are records of their own, and so is this.
        runaway();
        return csv_line(line, false);
      }
      // A quote in the middle of a field (`"john"@d1.test`): the fields as the line shows them.
      return literal_record(line, RecordIssue::None);
    case QuoteScan::Ends:
    case QuoteScan::Open:
      break;
  }
  // A record begun on an earlier line (an open quoted field) has those lines in raw_.
  raw_cur_ = in_record_ ? std::string_view(raw_.append(1, '\n').append(line)) : line;
  record_ended_ = false;
  csv_parse(&csv_, line.data(), line.size(), csv_field_cb, csv_record_cb, this);
  csv_parse(&csv_, "\n", 1, csv_field_cb, csv_record_cb, this);
  if (record_ended_) {  // LF is the only terminator: the record ended with this line
    in_record_ = false;
    raw_.clear();
    return;
  }
  if (!in_record_) raw_.assign(line);
  in_record_ = true;
  // A quoted field may span lines; a runaway quote must not buffer the rest of the file.
  if (raw_.size() >= opts_.max_record) runaway();
}

// One line split at the delimiter only (its quotes are characters like any other), its
// address field trimmed of blank space.
void RecordReader::literal_record(std::string_view line, RecordIssue issue) {
  std::string_view rest = line, field;
  bool found = false;
  for (size_t i = 0;; ++i) {
    size_t d = rest.find(static_cast<char>(delim_));
    std::string_view f = rest.substr(0, d);
    if (i == column_index_) {
      field = f;
      found = true;
      break;
    }
    if (d == std::string_view::npos) break;
    rest.remove_prefix(d + 1);
  }
  while (!field.empty() && csv_is_space(static_cast<unsigned char>(field.front())))
    field.remove_prefix(1);
  while (!field.empty() && csv_is_space(static_cast<unsigned char>(field.back())))
    field.remove_suffix(1);
  if (!found && issue == RecordIssue::None) issue = RecordIssue::MissingColumn;
  sink_(Record{++records_, field, issue, strip_cr(line)});
}

// A quoted field opened on an earlier line is not a field spanning lines after all (the file
// ends inside it, it reaches the size cap, or a later line shows a stray quote): its first line
// is reported (unclosed_quote) and each line after it read again on its own, so no line of the
// input goes without its record.
void RecordReader::runaway() {
  std::string lines = std::move(raw_);
  reset_csv();
  std::string_view rest = lines;
  size_t nl = rest.find('\n');
  literal_record(rest.substr(0, nl), RecordIssue::UnclosedQuote);
  while (nl != std::string_view::npos) {
    rest.remove_prefix(nl + 1);
    nl = rest.find('\n');
    csv_line(rest.substr(0, nl), false);
  }
}

void RecordReader::csv_field_cb(void* s, size_t len, void* self_p) {
  auto* self = static_cast<RecordReader*>(self_p);
  std::string_view f(static_cast<const char*>(s) ? static_cast<const char*>(s) : "", len);
  if (self->in_header_) {
    if (!self->header_found_ && iequals_trimmed(f, self->opts_.column)) {
      self->header_found_ = true;
      self->column_index_ = self->field_index_;
    }
  } else if (self->field_index_ == self->column_index_) {
    self->field_.assign(f);
    self->have_field_ = true;
  }
  ++self->field_index_;
}

void RecordReader::csv_record_cb(int, void* self_p) {
  auto* self = static_cast<RecordReader*>(self_p);
  self->record_ended_ = true;
  ++self->records_;
  std::string_view raw = strip_cr(self->raw_cur_);
  if (self->have_field_)
    self->sink_(Record{self->records_, self->field_, RecordIssue::None, raw});
  else
    self->sink_(Record{self->records_, {}, RecordIssue::MissingColumn, raw});
  self->field_index_ = 0;
  self->have_field_ = false;
}

}  // namespace mxp::app
