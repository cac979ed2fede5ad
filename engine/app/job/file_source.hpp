// The JobSource of a file or an upload (job/source.hpp): the input read a chunk at a time
// through RecordReader as work drains, its fingerprint (bytes read and their CRC-32) for
// --resume, and, for a resumed job, the journal's rows not yet done, paged before the input
// goes on past what the journal holds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "app/io.hpp"
#include "app/job/source.hpp"
#include "app/records.hpp"
#include "store/sqlite_store.hpp"

namespace mxp::app {

class FileSource final : public JobSource {
 public:
  // `in` is open; `path` names it ("-": stdin) for the fingerprint's size and mtime; `chunk`:
  // the bytes read a page (the CLI reads 64 KiB; serve 4 KiB, so that a page never holds the
  // loop, and the API, for more than a few ms).
  FileSource(InputFile& in, const RecordOptions& records, std::string path, size_t chunk);

  // The journal a resumed job's pending rows are paged from (null: none).
  void set_journal(store::SqliteStore* journal) { journal_ = journal; }
  // Resuming `job`: the input's records up to line `after` are in the journal (read again,
  // counted, not returned); its rows not yet done come first. The fields of stored CSV rows
  // are found under `header` (the job's, from its options).
  void resume(store::JobId job, std::string header, unsigned char delimiter, uint64_t after);

  core::Expected<void, store::Error> next(RecordBatch& out) override;
  bool catching_up() const override { return resuming_ && !eof_ && last_record_ <= resume_after_; }
  void catch_up(RecordBatch& out) override { read_chunk(out); }
  bool ended() const override { return eof_; }
  bool pending() const override { return resuming_ && !pending_done_; }
  bool format_known() const override { return header_known_; }
  std::string_view header() const override { return header_; }
  unsigned char delimiter() const override { return delim_; }
  uint64_t records() const override { return records_; }
  uint64_t bytes_done() const override { return bytes_done_; }
  uint64_t bytes_total() const override { return in_.size(); }
  // {"bytes": N, "crc32": C} of the input read so far, with the file's "size" and "mtime".
  std::string fingerprint() const override;
  const std::string& input_error() const override { return reader_.error(); }
  const std::string& read_error() const override { return read_error_; }
  void release() override { chunk_.reset(); }

  // The address field of a stored input record (CSV: parsed again under the job's header).
  std::string field_of(const std::string& raw) const;

 private:
  void read_chunk(RecordBatch& out);
  void on_record(const Record& r);
  void note_format();

  InputFile& in_;
  RecordOptions records_opts_;
  std::string path_;
  size_t chunk_size_;
  RecordReader reader_;
  RecordBatch* out_ = nullptr;  // the page being read (on_record appends to it)
  std::unique_ptr<char[]> chunk_;
  std::string read_error_;
  bool eof_ = false;
  uint64_t records_ = 0, last_record_ = 0, bytes_done_ = 0;
  std::string header_;
  unsigned char delim_ = ',';
  bool header_known_ = false;
  // The input's bytes read so far (decompressed) and their CRC-32: its fingerprint.
  uint64_t fp_bytes_ = 0;
  unsigned long fp_crc_ = 0;
  // Resume.
  store::SqliteStore* journal_ = nullptr;
  store::JobId job_ = 0;
  bool resuming_ = false, pending_done_ = false;
  uint64_t resume_after_ = 0, pending_cursor_ = 0;
};

// The input of a resumed job must start with the bytes the journal's rows were read from
// (their line numbers are where reading goes on): a changed file is refused, never merged.
// 0: the same (or nothing to compare: a pipe, a journal from before fingerprints); 2: changed
// or unreadable (said on `diag`); 1: a journal error.
int check_input_unchanged(store::SqliteStore& journal, store::JobId job, const std::string& input,
                          std::FILE* diag);

}  // namespace mxp::app
