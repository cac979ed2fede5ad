// The ResultSink seam: where a job's finished records go. The runner (app/runner.hpp) hands
// each final record over, commits now and then, flushes at the end, and hears back when
// records are durable; it depends on nothing else of the sink. Today's sink is the journal
// and the output file, with the results cache (job/journal_sink.hpp); a cluster node would
// send its records to the job's owner instead.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "app/job/source.hpp"
#include "pipeline/result.hpp"

namespace mxp::app {

class ResultSink {
 public:
  // What a sink tells its runner, on the loop's thread.
  class Listener {
   public:
    // Batches up to `batch` (numbers commit() returned) are durable.
    virtual void sink_durable(uint64_t batch) = 0;
    // Work the sink waited for came back (after any sink_durable): its backlog shrank.
    virtual void sink_ready() = 0;
    // The sink cannot go on: `what` failed (said once). `resumable`: what is done is kept, and
    // with some space freed a --resume goes on (the runner says how).
    virtual void sink_failed(const std::string& what, bool resumable) = 0;

   protected:
    ~Listener() = default;
  };

  virtual ~ResultSink() = default;
  void set_listener(Listener* l) { listener_ = l; }

  // The input's format is known (CSV: its header line and delimiter; "" for a plain list): the
  // output may start.
  virtual void input_format(std::string_view header, unsigned char delimiter) = 0;
  // A page of records was read, in read order, and their results will come (`normalized`: each
  // one's address, "" when it has none). Called before any of them is accepted.
  virtual void expect(const RecordBatch& page, const std::vector<std::string>& normalized) = 0;
  // What the sink keeps of the records read goes now (the journal: their rows, one transaction
  // a page): at the end of each page, and before results are committed (a result's row must be
  // stored before it).
  virtual void store_read() = 0;
  // A record is final. `json`: the record (pipeline::append_json with the job's transcripts
  // flag); `raw`: its input record. One call a record: its cost is the formatting behind it.
  virtual void accept(const pipeline::Result& r, std::string_view raw, std::string&& json) = 0;
  // A result the verifier produced for the address `key` (not a repeat, not from the cache).
  virtual void verified(const std::string& key, const pipeline::Result& r) = 0;
  // Enough is accepted that the runner should commit now rather than at its next tick.
  virtual bool wants_commit() const = 0;
  // Hands on what was accepted. Returns the number of the batch it sealed (its records are
  // durable when sink_durable says so), 0 if none.
  virtual uint64_t commit() = 0;
  // Lines expected and never to come (the end, a cancel, an interrupt) hold nothing back.
  virtual void give_up_order() = 0;
  // Blocks until everything committed is durable and out (the end of the CLI's run, an
  // interrupt). False on a failure (said through the listener).
  virtual bool drain() = 0;
  // Everything accepted is durable and out.
  virtual bool flushed() const = 0;
  // A backlog: reading on would only grow it (memory).
  virtual bool behind() const = 0;
  // Called on the runner's tick: work waiting too long may be hurried.
  virtual void keep_up() {}
  // The job failed: nothing more is written (what is durable stays).
  virtual void halt() = 0;
  // The job has ended: buffers go.
  virtual void release() = 0;

 protected:
  Listener* listener_ = nullptr;
};

}  // namespace mxp::app
