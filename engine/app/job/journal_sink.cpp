#include "app/job/journal_sink.hpp"

#include <nlohmann/json.hpp>

namespace mxp::app {

using pipeline::Result;

std::string options_json(const VerifyOptions& o, std::string_view header, unsigned char delim) {
  nlohmann::json j = {{"input", o.input},
                      {"output", o.output},
                      {"format", o.format == OutputFormat::Csv ? "csv" : "jsonl"},
                      {"column", o.records.column},
                      {"column_given", o.records.column_given},
                      {"header", std::string(header)},
                      {"delimiter", std::string(1, static_cast<char>(delim))}};
  return j.dump();
}

bool cacheable(const Result& r) {
  return r.verdict != Verdict::Unknown && !r.normalized.empty();
}

JournalSink::JournalSink(loop::Loop& loop, const VerifyOptions& opts, OutputFile& out,
                         const JobSource& source, std::FILE* diag)
    : loop_(loop),
      opts_(opts),
      out_(out),
      source_(source),
      diag_(diag),
      fmt_(opts.format, opts.transcripts),
      order_(opts.order_input) {}

JournalSink::~JournalSink() {
  set_journal(nullptr, nullptr);
}

void JournalSink::set_journal(store::SqliteStore* reads, std::unique_ptr<store::Writer> writes) {
  if (writer_) {
    loop_.unwatch_fd(writer_->event_fd());
    writer_->drain();
    absorb();
  }
  journal_ = reads;
  writer_ = std::move(writes);
  if (writer_) (void)loop_.watch_fd(writer_->event_fd(), true, false, *this);
}

bool JournalSink::ensure_job() {
  if (job_ != 0) return true;
  if (!journal_) return false;
  auto j = journal_->create_job(opts_.input, options_json(opts_, header_, delim_));
  if (!j) return fail_store("journal", j.error());
  job_ = *j;
  (void)journal_->set_job_state(job_, "running");
  return true;
}

void JournalSink::save_state(std::string state) {
  if (!writer_ || job_ == 0) return;
  writer_->post([job = job_, state = std::move(state)](store::SqliteStore& s) {
    return s.set_job_state(job, state);
  });
}

bool JournalSink::rebuild(store::JobId job, const std::function<void(const Result&)>& counted) {
  job_ = job;
  std::string buf = fmt_.header();
  header_written_ = true;
  uint64_t after = 0;
  for (;;) {
    auto page = journal_->done_page(job, after, 4096);
    if (!page) return fail_store("journal", page.error());
    if (page->empty()) break;
    for (const auto& row : *page) {
      auto r = pipeline::parse_json(row.record);
      if (!r) {
        std::fprintf(diag_, "mxprobe verify: journal line %llu: %s\n",
                     static_cast<unsigned long long>(row.line), r.error().c_str());
        return false;
      }
      fmt_.append(*r, row.raw, buf);
      counted(*r);
      after = row.line;
    }
    if (!write_out(buf)) return false;
    buf.clear();
  }
  return write_out(buf);
}

void JournalSink::input_format(std::string_view header, unsigned char delimiter) {
  header_known_ = true;
  header_.assign(header);
  delim_ = delimiter;
  if (!header_.empty()) fmt_.set_input_header(header_, delim_);
}

void JournalSink::expect(const RecordBatch& page, const std::vector<std::string>& normalized) {
  for (size_t i = 0; i < page.size(); ++i) {
    order_.expect(page.line(i));
    if (journal_ && !page.stored(i))
      rows_.push_back({page.line(i), std::string(page.raw(i)), normalized[i]});
  }
}

// The rows read so far go to the journal (one transaction a page), the job first.
void JournalSink::store_rows() {
  if (!journal_ || rows_.empty()) return;
  if (!ensure_job()) return;
  // With the rows, the fingerprint of the input read so far: --resume reads the input again
  // from its start and must find the same bytes (check_input_unchanged).
  writer_->post(
      [job = job_, rows = std::move(rows_), fp = source_.fingerprint()](store::SqliteStore& s) {
        if (auto st = s.add_rows(job, rows); !st) return st;
        return s.set_meta("input_fingerprint:" + std::to_string(job), fp);
      });
  rows_.clear();
}

void JournalSink::accept(const Result& r, std::string_view raw, std::string&& json) {
  std::string text;  // the output's line, in input order through order_ (--order)
  if (fmt_.format() == OutputFormat::Jsonl)
    text = json;  // what fmt_.append would write: append_json, same transcripts flag
  else
    fmt_.append(r, raw, text);
  order_.push(r.line, std::move(text), out_buf_);
  if (journal_) {
    store::ResultRecord rec;
    rec.line = r.line;
    rec.verdict = to_string(r.verdict);
    rec.reason = to_string(r.reason);
    rec.checked_at = std::chrono::system_clock::to_time_t(r.checked_at);
    rec.json = std::move(json);
    batch_.push_back(std::move(rec));
  }
}

void JournalSink::verified(const std::string& key, const Result& r) {
  if (!cache_writer_ || !cacheable(r)) return;
  std::string json;
  pipeline::append_json(r, json, false);
  cache_batch_.push_back({key, std::chrono::system_clock::to_time_t(r.checked_at), json});
}

// Hands the batch to the journal's writer (one transaction on its thread) and writes it out
// when the writer says it is durable (absorb). A crash between the two loses nothing: --resume
// rebuilds the output from the journal. Without a journal, writes out at once.
uint64_t JournalSink::commit() {
  store_rows();
  if (failed_) return 0;
  if (!header_written_ && header_known_) {
    header_written_ = true;
    out_buf_.insert(0, fmt_.header());
  }
  uint64_t sealed = 0;
  if (writer_ && !batch_.empty()) {
    // The output of these records waits for their transaction; later output queues behind.
    sealed = writer_->post([job = job_, batch = std::move(batch_)](store::SqliteStore& s) {
      return s.record_results(job, batch);
    });
    batch_.clear();
    waiting_out_.push_back({sealed, std::move(out_buf_)});
    out_buf_.clear();
  } else if (!waiting_out_.empty()) {
    waiting_out_.back().data += out_buf_;
    out_buf_.clear();
  }
  if (header_written_ && waiting_out_.empty()) {
    if (!write_out(out_buf_)) return sealed;
    out_buf_.clear();
  }
  if (cache_writer_ && !cache_batch_.empty()) {
    cache_writer_->post_detached(
        [batch = std::move(cache_batch_)](store::SqliteStore& s) { return s.put_cache(batch); });
    cache_batch_.clear();
  }
  return sealed;
}

// The journal's writer finished batches: their records are durable, so out they go.
void JournalSink::on_fd_ready(int, bool, bool) {
  absorb();
  if (listener_) listener_->sink_ready();
}

void JournalSink::absorb() {
  for (auto& d : writer_->reap()) {
    if (!d.status.ok()) {
      fail_store("journal", d.status.error());
      continue;
    }
    if (listener_) listener_->sink_durable(d.ticket);
    while (!failed_ && !waiting_out_.empty() && waiting_out_.front().ticket <= d.ticket) {
      if (!write_out(waiting_out_.front().data)) break;
      waiting_out_.pop_front();
    }
  }
}

bool JournalSink::drain() {
  if (!writer_) return !failed_;
  writer_->drain();
  absorb();
  if (failed_) return false;
  if (!write_out(out_buf_)) return false;
  out_buf_.clear();
  return true;
}

bool JournalSink::flushed() const {
  return rows_.empty() && batch_.empty() && out_buf_.empty() && waiting_out_.empty() &&
         order_.held() == 0 && !(writer_ && writer_->outstanding()) &&
         (header_written_ || !header_known_);
}

void JournalSink::release() {
  waiting_out_ = {};
  rows_ = {};
  batch_ = {};
  cache_batch_ = {};
  out_buf_ = {};
  order_ = OutputOrder(opts_.order_input);
}

bool JournalSink::write_out(std::string_view data) {
  if (data.empty()) return true;
  auto w = out_.write(data);
  if (w) return true;
  failed_ = true;
  if (listener_) listener_->sink_failed(w.error(), true);
  return false;
}

bool JournalSink::fail_store(const char* what, const store::Error& err) {
  const bool full = (err.code & 0xff) == 13;  // SQLITE_FULL: the disk is full
  failed_ = true;
  if (listener_) listener_->sink_failed(std::string(what) + ": " + err.message, full);
  return false;
}

}  // namespace mxp::app
