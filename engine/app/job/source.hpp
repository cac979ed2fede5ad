// The JobSource seam: where a job's records come from. The runner (app/runner.hpp) asks for one
// page at a time as work drains and depends on nothing else of the source. Today's source is the
// input file or upload, with a resumed job's pending rows from its journal first
// (job/file_source.hpp); a cluster node that is sent chunks of a job implements the same.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "app/records.hpp"
#include "core/expected.hpp"
#include "store/status.hpp"

namespace mxp::app {

// One page of records. Their text lives in one buffer that clear() keeps, so a page costs no
// allocation per record once the buffers have grown.
class RecordBatch {
 public:
  // `field`: the address as given; `raw`: the record as read (empty: too long to keep; the same
  // as field for a plain list). `stored`: the job's journal holds its row already (a resumed
  // job's pending rows), so it is not stored again.
  void add(uint64_t line, std::string_view field, std::string_view raw, RecordIssue issue,
           bool stored) {
    Item it{line, text_.size(), field.size(), 0, raw.size(), issue, stored};
    text_.append(field);
    if (raw.data() == field.data() && raw.size() == field.size()) {
      it.raw_at = it.field_at;
    } else {
      it.raw_at = text_.size();
      text_.append(raw);
    }
    items_.push_back(it);
  }
  void clear() {
    items_.clear();
    text_.clear();
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  uint64_t line(size_t i) const { return items_[i].line; }
  std::string_view field(size_t i) const {
    return std::string_view(text_).substr(items_[i].field_at, items_[i].field_len);
  }
  std::string_view raw(size_t i) const {
    return std::string_view(text_).substr(items_[i].raw_at, items_[i].raw_len);
  }
  RecordIssue issue(size_t i) const { return items_[i].issue; }
  bool stored(size_t i) const { return items_[i].stored; }

 private:
  struct Item {
    uint64_t line;
    size_t field_at, field_len, raw_at, raw_len;
    RecordIssue issue;
    bool stored;
  };
  std::vector<Item> items_;
  std::string text_;
};

class JobSource {
 public:
  virtual ~JobSource() = default;

  // Appends the next page of records to `out` (an input chunk, a page of a resumed job's
  // pending rows, which come first, a chunk sent to a node). An empty page is no end: ended()
  // and pending() say that. Fails only on the store it pages from (a resumed job's journal):
  // the job stops.
  virtual core::Expected<void, store::Error> next(RecordBatch& out) = 0;
  // A paused job reads on while this is true: what comes next is in the journal already (a
  // resumed job's input, up to where its last run stopped), so reading it makes no work and
  // tells the job's size. catch_up() reads one page of it (records past it may come too).
  virtual bool catching_up() const { return false; }
  virtual void catch_up(RecordBatch& out) { (void)out; }

  // The input was read to its end (or reading it failed)...
  virtual bool ended() const = 0;
  // ...and records stored before are still to come (a resumed job's pending rows).
  virtual bool pending() const { return false; }

  // The input's format is known (from its first record, or its end): CSV, its header line and
  // delimiter; a plain list, "" and ','.
  virtual bool format_known() const = 0;
  virtual std::string_view header() const = 0;
  virtual unsigned char delimiter() const = 0;

  // Input records read so far (those a resumed job had done too) and the share of the input
  // they are (bytes_total 0: unknown): the job's size and progress before its end is read.
  virtual uint64_t records() const = 0;
  virtual uint64_t bytes_done() const = 0;
  virtual uint64_t bytes_total() const = 0;
  // What a resumed job's input is checked against (JSON text; job/file_source.hpp).
  virtual std::string fingerprint() const = 0;

  // Why reading stopped early, "" if it did not: the input cannot be used as asked (no such
  // column: the user's to fix, exit 2)...
  virtual const std::string& input_error() const = 0;
  // ...or reading it failed (I/O, a damaged gzip stream: exit 1).
  virtual const std::string& read_error() const = 0;

  // The job has ended: reading buffers go.
  virtual void release() {}
};

}  // namespace mxp::app
