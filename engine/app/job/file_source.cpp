#include "app/job/file_source.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace mxp::app {

FileSource::FileSource(InputFile& in, const RecordOptions& records, std::string path, size_t chunk)
    : in_(in),
      records_opts_(records),
      path_(std::move(path)),
      chunk_size_(chunk),
      reader_(records, [this](const Record& r) { on_record(r); }),
      fp_crc_(crc32_z(0, nullptr, 0)) {}

void FileSource::resume(store::JobId job, std::string header, unsigned char delimiter,
                        uint64_t after) {
  job_ = job;
  header_ = std::move(header);
  delim_ = delimiter;
  resume_after_ = after;
  resuming_ = true;
  pending_cursor_ = 0;
}

core::Expected<void, store::Error> FileSource::next(RecordBatch& out) {
  if (!pending()) {
    read_chunk(out);
    return {};
  }
  if (!journal_) {  // no journal to page from (it was closed): nothing stored comes
    pending_done_ = true;
    return {};
  }
  auto page = journal_->pending_rows(job_, pending_cursor_, 1024);
  if (!page) return core::unexpected(page.error());
  if (page->empty()) {
    pending_done_ = true;
    return {};
  }
  for (const auto& row : *page) {
    pending_cursor_ = row.line;
    out.add(row.line, field_of(row.raw), row.raw, RecordIssue::None, true);
  }
  return {};
}

std::string FileSource::field_of(const std::string& raw) const {
  if (header_.empty()) return raw;
  std::string field;
  RecordOptions ro = records_opts_;
  ro.format = InputFormat::Csv;
  RecordReader rr(ro, [&](const Record& r) { field.assign(r.field); });
  rr.feed(header_);
  rr.feed("\n");
  field.clear();
  rr.feed(raw);
  rr.feed("\n");
  rr.finish();
  return field;
}

void FileSource::read_chunk(RecordBatch& out) {
  if (eof_) return;
  if (!chunk_) chunk_ = std::make_unique<char[]>(chunk_size_);
  out_ = &out;
  auto got = in_.read(chunk_.get(), chunk_size_);
  if (!got) read_error_ = got.error();
  const size_t n = got ? *got : 0;
  if (n > 0) {
    fp_crc_ = crc32_z(fp_crc_, reinterpret_cast<const Bytef*>(chunk_.get()), n);
    fp_bytes_ += n;
  }
  if (n == 0 || !reader_.feed({chunk_.get(), n})) {
    if (got && n == 0) reader_.finish();
    eof_ = true;
  } else {
    bytes_done_ = in_.consumed();
  }
  if (!header_known_ && eof_) note_format();
  out_ = nullptr;
}

void FileSource::on_record(const Record& r) {
  ++records_;
  last_record_ = r.number;
  if (!header_known_) note_format();
  if (resuming_ && r.number <= resume_after_) return;  // in the journal already
  // A record too long to keep is neither stored nor copied to the output: its field says why.
  std::string_view raw = r.issue == RecordIssue::RecordTooLong ? std::string_view() : r.raw;
  out_->add(r.number, r.field, raw, r.issue, false);
}

// The input's format is known from its first record on (CSV: its header line), before any
// record is formatted: CSV output then starts with the user's columns.
void FileSource::note_format() {
  header_known_ = true;
  if (reader_.format() == InputFormat::Csv && header_.empty()) {
    header_ = std::string(reader_.header());
    delim_ = reader_.delimiter();
  }
}

std::string FileSource::fingerprint() const {
  // --resume reads the input again from its start and must find the same bytes (see
  // check_input_unchanged); size and mtime only say what changed.
  nlohmann::json fp = {{"bytes", fp_bytes_}, {"crc32", fp_crc_}};
  if (struct stat st{}; path_ != "-" && stat(path_.c_str(), &st) == 0) {
    fp["size"] = static_cast<uint64_t>(st.st_size);
    fp["mtime"] = static_cast<int64_t>(st.st_mtime);
  }
  return fp.dump();
}

int check_input_unchanged(store::SqliteStore& journal, store::JobId job, const std::string& input,
                          std::FILE* diag) {
  if (input == "-") return 0;  // a pipe cannot be read twice: the caller's word
  auto meta = journal.get_meta("input_fingerprint:" + std::to_string(job));
  if (!meta) {
    std::fprintf(diag, "mxprobe verify: journal: %s\n", meta.error().message.c_str());
    return 1;
  }
  if (!meta->has_value()) return 0;
  nlohmann::json fp = nlohmann::json::parse(**meta, nullptr, false);
  if (!fp.is_object()) return 0;
  const uint64_t want = fp.value("bytes", uint64_t{0});
  const uint64_t want_crc = fp.value("crc32", uint64_t{0});
  InputFile again;
  if (auto opened = again.open(input); !opened) {
    std::fprintf(diag, "mxprobe verify: %s\n", opened.error().c_str());
    return 2;
  }
  uLong crc = crc32_z(0, nullptr, 0);
  uint64_t got = 0;
  std::vector<char> buf(64 * 1024);
  while (got < want) {
    auto n = again.read(buf.data(), std::min<uint64_t>(buf.size(), want - got));
    if (!n) {
      std::fprintf(diag, "mxprobe verify: %s\n", n.error().c_str());
      return 2;
    }
    if (*n == 0) break;
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buf.data()), *n);
    got += *n;
  }
  if (got == want && crc == want_crc) return 0;
  struct stat st {};
  const std::string now =
      stat(input.c_str(), &st) == 0 ? std::to_string(st.st_size) + " bytes now" : "unreadable now";
  std::fprintf(diag,
               "mxprobe verify: %s changed since the journal was written (%s bytes then, %s): "
               "its first %llu bytes are not the ones the journalled lines were read from, so "
               "resuming would verify some lines twice and skip others. Restore the original "
               "input, or start over without --resume (delete the journal)\n",
               input.c_str(), fp.contains("size") ? fp["size"].dump().c_str() : "?", now.c_str(),
               static_cast<unsigned long long>(want));
  return 2;
}

}  // namespace mxp::app
