// The ResultSink of a file job (job/sink.hpp): finished records go to the journal in batches
// (one transaction each, on the store::Writer's thread) and to the output once their batch is
// durable, in input order through OutputOrder; the records read go to the journal as rows
// first, with the input's fingerprint; verified results go to the results cache. A crash loses
// nothing written: --resume rebuilds the output from the journal (rebuild()).
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/io.hpp"
#include "app/job/sink.hpp"
#include "app/output.hpp"
#include "app/output_order.hpp"
#include "app/verify.hpp"
#include "loop/loop.hpp"
#include "store/sqlite_store.hpp"
#include "store/writer.hpp"

namespace mxp::app {

inline constexpr size_t kCommitCount = 2000;  // results per journal transaction at most

// The options a job was started with, as its journal keeps them (serve restores a job from
// them; --resume takes the CSV header and delimiter from them).
std::string options_json(const VerifyOptions& o, std::string_view header, unsigned char delim);

// Final answers about the mailbox or domain; never "unknown" (it may change in minutes) nor
// syntax errors (no address to key on).
bool cacheable(const pipeline::Result& r);

class JournalSink final : public ResultSink, private loop::FdHandler {
 public:
  // `source`: the job's input, whose fingerprint goes with the rows. `diag`: where a journal
  // record that cannot be read back is said (rebuild()).
  JournalSink(loop::Loop& loop, const VerifyOptions& opts, OutputFile& out, const JobSource& source,
              std::FILE* diag);
  ~JournalSink() override;
  JournalSink(const JournalSink&) = delete;
  JournalSink& operator=(const JournalSink&) = delete;

  // The journal: read here on the loop's thread, written by `writes` on its own thread (owned
  // here). Null, null: none (the old writer's work is finished and absorbed first).
  void set_journal(store::SqliteStore* reads, std::unique_ptr<store::Writer> writes);
  // The results cache's writer (shared with other work; null: none).
  void set_cache(store::Writer* writes) { cache_writer_ = writes; }
  // The job's entry in the journal (made with its first rows, or now): false on a store error.
  bool ensure_job();
  // Keeps a state in the journal ("paused", "running") for whoever opens it next.
  void save_state(std::string state);
  store::JobId job() const { return job_; }
  // Resuming `job`: the output is made whole from the journal, every committed record once,
  // none torn; `counted` sees each record. False on an error (said).
  bool rebuild(store::JobId job, const std::function<void(const pipeline::Result&)>& counted);

  void input_format(std::string_view header, unsigned char delimiter) override;
  void expect(const RecordBatch& page, const std::vector<std::string>& normalized) override;
  void store_read() override { store_rows(); }
  void accept(const pipeline::Result& r, std::string_view raw, std::string&& json) override;
  void verified(const std::string& key, const pipeline::Result& r) override;
  bool wants_commit() const override { return batch_.size() >= kCommitCount; }
  uint64_t commit() override;
  void give_up_order() override { order_.drain(out_buf_); }
  bool drain() override;
  bool flushed() const override;
  // The journal's writer has a backlog.
  bool behind() const override { return writer_ && writer_->outstanding() > 8; }
  void keep_up() override {
    if (writer_) writer_->keep_up();
  }
  void halt() override { failed_ = true; }
  void release() override;

 private:
  void on_fd_ready(int, bool, bool) override;
  void absorb();
  void store_rows();
  bool write_out(std::string_view data);
  bool fail_store(const char* what, const store::Error& err);

  loop::Loop& loop_;
  const VerifyOptions& opts_;
  OutputFile& out_;
  const JobSource& source_;
  std::FILE* diag_;
  RecordFormatter fmt_;
  store::SqliteStore* journal_ = nullptr;
  std::unique_ptr<store::Writer> writer_;  // the journal's writes
  store::Writer* cache_writer_ = nullptr;
  store::JobId job_ = 0;
  std::string header_;
  unsigned char delim_ = ',';
  bool header_known_ = false, header_written_ = false, failed_ = false;
  std::vector<store::RowIn> rows_;
  std::vector<store::ResultRecord> batch_;
  std::vector<store::CacheEntry> cache_batch_;
  // The output: what may go out now, and what waits for its batch to be durable, by ticket.
  std::string out_buf_;
  struct WaitingOut {
    uint64_t ticket;
    std::string data;
  };
  std::deque<WaitingOut> waiting_out_;
  // Finished records wait here for earlier lines (--order input, a bounded window).
  OutputOrder order_;
};

}  // namespace mxp::app
