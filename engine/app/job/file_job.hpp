// A job whose records come from a file (or an upload) and go to its journal and output file:
// the CLI's `verify` run and each of serve's jobs. The runner (app/runner.hpp) with today's
// source and sink around it (FileSource, JournalSink), and what only a journal can do: resume
// a job from it, keep its state, name its entry.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "app/io.hpp"
#include "app/job/file_source.hpp"
#include "app/job/journal_sink.hpp"
#include "app/runner.hpp"

namespace mxp::app {

// The source and sink, built before the runner that refers to them (a base class is built
// before the members and the later bases: the runner is the later base).
struct FileJobParts {
  FileJobParts(loop::Loop& loop, const VerifyOptions& opts, InputFile& in, OutputFile& out,
               std::FILE* diag, size_t chunk)
      : source(in, opts.records, opts.input, chunk), sink(loop, opts, out, source, diag) {}
  FileSource source;
  JournalSink sink;
};

class FileJob final : private FileJobParts, public Runner {
 public:
  // The CLI: reads 64 KiB (~3,000 lines) a page; owns its verifier and the loop.
  FileJob(Engine& e, const VerifyOptions& opts, InputFile& in, OutputFile& out, std::FILE* diag,
          Progress* progress)
      : FileJobParts(*e.loop, opts, in, out, diag, 64 * 1024),
        Runner(e, opts, source, sink, diag, progress) {}
  // serve: 4 KiB a page, so that reading and journalling one never holds the loop (and the
  // API) for more than a few ms; a verifier shared with other work (see Runner).
  FileJob(Engine& e, const VerifyOptions& opts, InputFile& in, OutputFile& out, std::FILE* diag,
          pipeline::Verifier& shared, uint64_t id_base, std::function<void()> on_done)
      : FileJobParts(*e.loop, opts, in, out, diag, 4 * 1024),
        Runner(e, opts, source, sink, diag, shared, id_base, std::move(on_done)) {}
  // The journal's last work is absorbed while the runner can still hear of it.
  ~FileJob() { set_journal(nullptr, nullptr); }

  // The journal: read here on the loop's thread, written by `writes` on its own thread (owned
  // here). Null, null: no journal (any writes left are run first).
  void set_journal(store::SqliteStore* reads, std::unique_ptr<store::Writer> writes) {
    sink.set_journal(reads, std::move(writes));
    source.set_journal(reads);
    Runner::set_journal(reads);
    journal_ = reads;
  }
  // The results cache: read here, written (detached) by `writes`, shared with other work.
  void set_cache(store::SqliteStore* reads, store::Writer* writes) {
    Runner::set_cache(reads, writes);
    sink.set_cache(writes);
  }
  // Resuming `job`: rebuilds the output from the journal and continues after its last row.
  bool resume(JobId job, const nlohmann::json& options);
  // The job's entry in the journal (made with its first rows, or now): false on a store error.
  bool ensure_journal_job() { return sink.ensure_job(); }
  // Keeps a state in the journal ("paused", "running") for whoever opens it next.
  void save_state(std::string state) { sink.save_state(std::move(state)); }
  JobId job() const { return sink.job(); }

 private:
  store::SqliteStore* journal_ = nullptr;
};

}  // namespace mxp::app
