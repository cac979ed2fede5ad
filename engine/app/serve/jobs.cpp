// `mxprobe serve`: bulk jobs (/v1/jobs): upload, create, start, restore at start-up, release,
// actions (pause, resume, cancel, delete) and result downloads.
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

std::string Service::job_state(const Job& j) {
  if (!j.runner) return j.ended_state;
  if (j.runner && !j.runner->failure().empty()) return "failed";
  if (j.runner && j.runner->cancelled()) return "cancelled";
  if (j.finished) return "finished";
  if (j.runner && j.runner->paused()) return "paused";
  return "running";
}

// A job's name: up to 200 bytes of UTF-8 text without control characters.
bool Service::valid_job_name(const std::string& n, std::string& err) {
  if (n.size() > 200) {
    err = "name: at most 200 bytes";
    return false;
  }
  for (unsigned char c : n)
    if (c < 0x20 || c == 0x7f) {
      err = "name: no control characters";
      return false;
    }
  try {
    (void)json(n).dump();  // throws on bytes that are not UTF-8
  } catch (const json::exception&) {
    err = "name: UTF-8 text";
    return false;
  }
  return true;
}

json Service::job_json(const Job& j) const {
  json counts = json::object();
  uint64_t done = 0;
  for (int v = 0; v < kVerdictCount; ++v) {
    uint64_t n = j.runner ? j.runner->count_of(static_cast<Verdict>(v)) : j.ended_counts[v];
    counts[std::string(to_string(static_cast<Verdict>(v)))] = n;
    done += n;
  }
  // The rate of this server's run: a job resumed after a restart had some done before.
  const uint64_t here = done - (j.runner ? std::min(done, j.runner->rebuilt()) : done);
  const auto until = j.finished ? j.ended : Clock::now();
  const double secs = std::chrono::duration<double>(until - j.started).count();
  const double rate = secs > 0 ? double(here) / secs : 0;
  const bool known = !j.runner || j.runner->input_read();
  const uint64_t records = j.runner ? j.runner->records_seen() : done;
  json eta = nullptr;
  if (!j.finished && rate > 0) {
    double left = known ? double(records - std::min(records, done))
                        : double(done) / std::max(1e-9, j.runner->progress_fraction()) - done;
    eta = std::max(0.0, left / rate);
  }
  return {{"id", j.id},
          {"name", j.name.empty() ? json(nullptr) : json(j.name)},
          {"state", job_state(j)},
          {"created", pipeline::iso8601(j.created)},
          {"format", j.opts.format == OutputFormat::Csv ? "csv" : "jsonl"},
          {"input_bytes", j.input_bytes},
          {"records", known ? json(records) : json(nullptr)},
          {"done", done},
          {"progress", j.finished ? 1.0 : (j.runner ? j.runner->progress_fraction() : 0.0)},
          {"in_flight", j.runner && !j.finished ? j.runner->addresses_in_flight() : 0},
          {"saved", !j.runner || j.finished || j.runner->records_saved()},
          {"counts", counts},
          {"rate_per_s", rate},
          {"eta_s", eta},
          {"error", j.runner && !j.runner->failure().empty() ? json(j.runner->failure())
                    : !j.ended_error.empty()                 ? json(j.ended_error)
                                                             : json(nullptr)},
          {"webhook", webhook_json(j)},
          {"links",
           {{"self", "/v1/jobs/" + std::to_string(j.id)},
            {"results", "/v1/jobs/" + std::to_string(j.id) + "/results"}}}};
}

json Service::jobs_summary() const {
  json list = json::array();
  for (const auto& [id, j] : jobs_)
    list.push_back(job_json(*j));
  return list;
}

std::unique_ptr<server::BodySink> Service::upload_job(const http::Request& q, server::Responder r) {
  // The body is the list itself; a form's parts (curl -F) would be read as addresses, its
  // boundary lines included.
  if (const std::string* ct = q.header("Content-Type")) {
    const std::string t = core::lower(std::string_view(*ct).substr(0, ct->find(';')));
    if (t.starts_with("multipart/")) {
      r.respond(error(415, "unsupported_media_type",
                      "send the list itself as the body (curl --data-binary @list.csv), not a "
                      "form (" +
                          t + ")"));
      return nullptr;
    }
  }
  const std::string* fmt = q.param("format");
  if (fmt && *fmt != "jsonl" && *fmt != "csv") {
    r.respond(error(400, "bad_request", "format: jsonl or csv"));
    return nullptr;
  }
  std::string name, name_err;
  if (const std::string* n = q.param("name")) name = *n;
  if (!valid_job_name(name, name_err)) {
    r.respond(error(400, "bad_request", name_err.empty() ? "name: UTF-8 text" : name_err));
    return nullptr;
  }
  std::optional<webhook::Config> hook;
  std::string hook_err;
  if (!webhook_settings(q, hook, hook_err)) {
    r.respond(error(400, "bad_request", hook_err));
    return nullptr;
  }
  if (cluster_ && !node_number_) {
    r.respond(error(503, "cluster_unavailable",
                    "this node has not joined the cluster yet (its Redis has not answered): "
                    "try again in a moment"));
    return nullptr;
  }
  auto job = std::make_unique<Job>();
  job->id = next_job_++;
  job->name = name;
  job->hook_config = std::move(hook);
  job->dir = o_.data + "/" + std::to_string(job->id);
  if (!make_parent_dirs(job->dir + "/x")) {
    r.respond(error(500, "storage", "cannot create " + job->dir));
    return nullptr;
  }
  auto& vo = job->opts;
  vo.format = fmt && *fmt == "csv" ? OutputFormat::Csv : OutputFormat::Jsonl;
  if (const std::string* col = q.param("column")) {
    vo.records.column = *col;
    vo.records.column_given = true;
  }
  vo.input = job->dir + "/input";
  vo.output = job->dir + (vo.format == OutputFormat::Csv ? "/results.csv" : "/results.jsonl");
  vo.progress = 0;
  vo.cache_ttl = o_.cache_ttl;
  vo.no_cache = o_.no_cache;
  if (!name.empty()) std::ofstream(job->dir + "/name", std::ios::binary) << name;
  const int fd = ::open(vo.input.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    r.respond(error(500, "storage", "cannot write " + vo.input + ": " + std::strerror(errno)));
    std::filesystem::remove_all(job->dir);
    return nullptr;
  }
  return std::make_unique<Upload>(*this, std::move(job), std::move(r), fd);
}

// The upload is complete: the job starts.
void Service::create_job(std::unique_ptr<Job> job, server::Responder r) {
  if (job->input_bytes == 0) {
    std::filesystem::remove_all(job->dir);
    return r.respond(error(400, "bad_request", "empty body: send the list"));
  }
  job->created = std::chrono::system_clock::now();
  std::string err;
  if (!start_job(*job, nullptr, err)) return r.respond(error(500, "storage", err));
  // The webhook's tables and trigger are in the journal before the first result is.
  if (job->hook_config && !start_webhook(*job, &*job->hook_config, err)) {
    const std::string dir = job->dir;
    job.reset();  // its runner and journal first, then its files: it never started
    std::filesystem::remove_all(dir);
    return r.respond(error(500, "storage", "webhook: " + err));
  }
  const uint64_t id = job->id;
  Job& ref = *job;
  jobs_[id] = std::move(job);
  ref.runner->begin();
  publish_jobs(true);
  r.respond(json_response(201, job_json(ref)));
  publish_event(json{{"type", "event"},
                     {"event", "job_started"},
                     {"job", id},
                     {"text", "job " + std::to_string(id) + job_label(ref) + " started"}});
}

// Opens a job's files and gives it a runner (not yet fed: begin()); `resume`: the journal's
// job, whose finished records make the output again and whose other lines are done now.
bool Service::start_job(Job& job, const store::JobInfo* resume, std::string& err) {
  auto journal = store::SqliteStore::open(job.dir + "/journal.db");
  if (!journal) {
    err = journal.error().message;
    return false;
  }
  job.journal = std::move(*journal);
  auto opened = job.in.open(job.opts.input);
  if (opened) opened = job.out.open(job.opts.output);
  if (!opened) {
    err = opened.error();
    return false;
  }
  job.started = Clock::now();
  const uint64_t id = job.id;
  // A cluster job's ids never reach this node's verifier (its dispatch has them): any range.
  job.runner = std::make_unique<FileJob>(e_, job.opts, job.in, job.out, diag_, verifier_,
                                         cluster_ ? uint64_t{1} << kJobIdShift : id << kJobIdShift,
                                         [this, id] { job_done(id); });
  auto writer = store::Writer::open(job.dir + "/journal.db", diag_, "mxprobe serve: journal");
  if (!writer) {
    err = writer.error().message;
    return false;
  }
  job.runner->set_journal(job.journal.get(), std::move(*writer));
  job.runner->set_cache(cache_.get(), cache_writer_.get());
  job.runner->set_on_record([this](const Result& r) { tally(r.verdict, r.reason, r.cached); });
  if (cluster_) start_cluster_job(job);
  if (resume) {
    json o = json::parse(resume->options_json, nullptr, false);
    if (!o.is_object() || !job.runner->resume(resume->id, o)) {
      err = "cannot resume from " + job.dir + "/journal.db";
      return false;
    }
  }
  return true;
}

// At start-up: the jobs under --data, as their journals left them. Ended ones are listed
// (and their results downloadable); unfinished ones go on where they stopped (a paused one
// stays paused), nothing done twice; an upload that never completed is removed.
void Service::restore_jobs() {
  std::vector<uint64_t> ids;
  if (DIR* dir = opendir(o_.data.c_str())) {
    while (dirent* de = readdir(dir)) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(de->d_name, &end, 10);
      if (end != de->d_name && *end == 0 && n > 0) ids.push_back(n);
    }
    closedir(dir);
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    next_job_ = std::max(next_job_, id + 1);
    auto job = std::make_unique<Job>();
    job->id = id;
    job->dir = o_.data + "/" + std::to_string(id);
    if (!std::filesystem::exists(job->dir + "/journal.db")) {
      std::filesystem::remove_all(job->dir);  // its upload never completed (no 201 was sent)
      continue;
    }
    std::string err = restore_job(*job);
    if (!err.empty()) {
      std::fprintf(diag_, "mxprobe serve: job %llu in %s: %s (skipped)\n",
                   static_cast<unsigned long long>(id), job->dir.c_str(), err.c_str());
      continue;
    }
    std::fprintf(diag_, "mxprobe serve: job %llu restored: %s, %llu records done\n",
                 static_cast<unsigned long long>(id), job_state(*job).c_str(),
                 static_cast<unsigned long long>(job->runner ? job->runner->written() : 0));
    Job& ref = *job;
    jobs_[id] = std::move(job);
    // Its webhook goes on: what was not acknowledged is sent again; a job that ended before
    // its end event was made gets it now.
    if (!start_webhook(ref, nullptr, err))
      std::fprintf(diag_, "mxprobe serve: job %llu: webhook: %s (not sent)\n",
                   static_cast<unsigned long long>(id), err.c_str());
    if (ref.finished) webhook_job_ended(ref);
    // A paused one too: it reads through what its journal holds (no work), so that its
    // size and progress are shown.
    if (ref.runner) ref.runner->begin();
  }
}

std::string Service::restore_job(Job& job) {
  std::error_code ec;
  job.input_bytes = std::filesystem::file_size(job.dir + "/input", ec);
  if (ec) return "no input file";
  if (std::ifstream nf(job.dir + "/name", std::ios::binary); nf) std::getline(nf, job.name, '\0');
  auto store = store::SqliteStore::open(job.dir + "/journal.db");
  if (!store) return store.error().message;
  auto latest = (*store)->latest_job();
  if (!latest) return latest.error().message;
  std::optional<store::JobInfo> info;
  if (latest->has_value()) info = **latest;
  // The options it was started with (the journal has them once a row was read).
  json o = info ? json::parse(info->options_json, nullptr, false) : json::object();
  if (!o.is_object()) return "unreadable job options";
  auto& vo = job.opts;
  vo.format = o.value("format", "jsonl") == "csv" ? OutputFormat::Csv : OutputFormat::Jsonl;
  vo.input = job.dir + "/input";
  vo.output = job.dir + (vo.format == OutputFormat::Csv ? "/results.csv" : "/results.jsonl");
  vo.records.column = o.value("column", vo.records.column);
  vo.records.column_given = o.value("column_given", false);
  vo.progress = 0;
  vo.cache_ttl = o_.cache_ttl;
  vo.no_cache = o_.no_cache;
  job.created = info ? std::chrono::system_clock::from_time_t(info->created)
                     : std::chrono::system_clock::now();
  const std::string state = info ? info->state : "running";
  if (state == "finished" || state == "cancelled" || state == "failed") {
    auto counts = (*store)->count_by_verdict(info->id);
    if (!counts) return counts.error().message;
    for (const auto& [verdict, n] : *counts)
      for (int v = 0; v < kVerdictCount; ++v)
        if (verdict == to_string(static_cast<Verdict>(v))) job.ended_counts[v] = n;
    job.ended_state = state;
    if (std::ifstream f(job.dir + "/error"); f) std::getline(f, job.ended_error, '\0');
    job.finished = true;
    job.started = job.ended = Clock::now();
    return "";
  }
  if (info && check_input_unchanged(**store, info->id, vo.input, diag_) != 0)
    return "its input is not the one its journal was read from";
  store->reset();
  std::string err;
  if (!start_job(job, info ? &*info : nullptr, err)) return err;
  if (state == "paused") job.runner->pause();
  return "";
}

// A cluster node's job is verified by the cluster: its runner's addresses go out in chunks and
// their records come back here (job/cluster_dispatch.hpp). Each run of the job has a name of its
// own in Redis, kept in DIR/ID/cluster_run; a run after a restart drops the previous run's name,
// so that the nodes discard what is left of its chunks instead of verifying them for no one.
void Service::start_cluster_job(Job& job) {
  const uint64_t id = job.id;
  const std::string run_file = job.dir + "/cluster_run";
  std::string old;
  if (std::ifstream f(run_file); f) std::getline(f, old);
  DispatchOptions dop;
  if (!old.empty()) {
    const std::string key = dop.queue.prefix + "job:" + old;
    cluster_->redis().command({"DEL", key, key + ":results"}, [](cluster::Result&&) {});
  }
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string run = cluster_->name() + ":" + std::to_string(id) + ":" + std::to_string(now);
  std::ofstream(run_file, std::ios::binary | std::ios::trunc) << run << "\n";
  json options = {{"transcripts", job.opts.transcripts}};
  job.dispatch = std::make_unique<ClusterDispatch>(
      *e_.loop, cluster_->redis(), run, options.dump(),
      [this, id](Result&& r) {
        auto it = jobs_.find(id);
        if (it != jobs_.end() && it->second->runner) it->second->runner->deliver(std::move(r));
      },
      dop);
  job.dispatch->open();
  job.runner->set_dispatch(job.dispatch.get());
}

void Service::job_done(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second->finished) return;
  Job& j = *it->second;
  if (j.dispatch) j.dispatch->drop();
  j.finished = true;
  j.ended = Clock::now();
  // The end state is kept for a restart, also for a job that failed before its first row
  // (a missing column): that one gets its journal entry, options included, now.
  const std::string failure = j.runner->failure();
  if (!failure.empty()) {
    std::ofstream(j.dir + "/error") << failure;
    (void)j.runner->ensure_journal_job();
  }
  (void)j.journal->set_job_state(j.runner->job(), job_state(j));
  (void)j.out.close();
  // The journal's page cache (tens of MiB) goes with it; downloads open it again.
  j.runner->set_journal(nullptr, nullptr);
  j.journal.reset();
  std::fprintf(diag_, "mxprobe serve: job %llu %s: %llu records\n",
               static_cast<unsigned long long>(id), job_state(j).c_str(),
               static_cast<unsigned long long>(j.runner->written()));
  webhook_job_ended(j);
  publish_jobs(true);
  publish_event(json{{"type", "event"},
                     {"event", "job_done"},
                     {"job", id},
                     {"text", "job " + std::to_string(id) + job_label(j) + " " + job_state(j)}});
}

// An ended job keeps its counts and state, not its input file nor its runner's buffers
// (about 2 MiB each): done here, on the tick, never inside the runner's own call.
void Service::release_ended_jobs() {
  for (auto& [id, j] : jobs_) {
    if (!j->finished || j->released || !j->runner) continue;
    j->released = true;
    j->in.close();
    j->runner->release();
  }
}

bool Service::job_action(uint64_t id, const std::string& action, std::string& err) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    err = "no job " + std::to_string(id);
    return false;
  }
  Job& j = *it->second;
  if (j.finished) {
    err = "job " + std::to_string(id) + " is " + job_state(j);
    return false;
  }
  if (action == "pause") j.runner->pause();
  if (action == "resume") j.runner->resume_feeding();
  if (action == "cancel") j.runner->cancel();
  if (action != "cancel") j.runner->save_state(action == "pause" ? "paused" : "running");
  publish_jobs(true);
  return true;
}

// An ended job (finished, cancelled, failed) goes with its files: input, journal, results. A
// running or paused one is refused (cancel it first).
bool Service::job_delete(uint64_t id, std::string& err) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    err = "no job " + std::to_string(id);
    return false;
  }
  Job& j = *it->second;
  if (!j.finished) {
    err = "job " + std::to_string(id) + " is " + job_state(j) +
          (job_state(j) == "cancelled" ? " and its sessions are still finishing: try again soon"
                                       : ": cancel it first");
    return false;
  }
  const std::string dir = j.dir, label = job_label(j);
  jobs_.erase(it);  // downloads in progress keep their own handle on the journal
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  unpublish_job(id);
  if (ec)
    std::fprintf(diag_, "mxprobe serve: job %llu: removing %s: %s\n",
                 static_cast<unsigned long long>(id), dir.c_str(), ec.message().c_str());
  publish_event(json{{"type", "event"},
                     {"event", "job_deleted"},
                     {"job", id},
                     {"text", "job " + std::to_string(id) + label + " deleted"}});
  return true;
}

// "/v1/jobs/ID" or "/v1/jobs/ID/REST": the job (or null) and REST.
Service::Job* Service::job_of(const std::string& path, std::string& rest) {
  std::string tail = path.substr(std::string("/v1/jobs/").size());
  size_t slash = tail.find('/');
  std::string idtext = tail.substr(0, slash);
  rest = slash == std::string::npos ? "" : tail.substr(slash + 1);
  char* end = nullptr;
  unsigned long long id = std::strtoull(idtext.c_str(), &end, 10);
  if (idtext.empty() || *end) return nullptr;
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

void Service::job_get(const http::Request& q, server::Responder r) {
  std::string rest;
  Job* j = job_of(q.path, rest);
  if (!j && cluster_) return remote_job(q, std::move(r));
  if (!j) return r.respond(error(404, "not_found", "no such job"));
  if (rest.empty()) return r.respond(json_response(200, job_json(*j)));
  if (rest == "webhooks") return webhooks_get(*j, q, std::move(r));
  if (rest != "results") return r.respond(error(404, "not_found", "no such resource"));
  const std::string* fmt = q.param("format");
  if (fmt && *fmt != "jsonl" && *fmt != "csv")
    return r.respond(error(400, "bad_request", "format: jsonl or csv"));
  stream_results(*j, fmt && *fmt == "csv" ? OutputFormat::Csv : OutputFormat::Jsonl, std::move(r));
}

void Service::job_post(const http::Request& q, server::Responder r) {
  std::string rest, err;
  Job* j = job_of(q.path, rest);
  if (!j && cluster_) return remote_job(q, std::move(r));
  if (!j) return r.respond(error(404, "not_found", "no such job"));
  if (rest != "pause" && rest != "resume" && rest != "cancel")
    return r.respond(error(404, "not_found", "POST /v1/jobs/ID/pause, resume or cancel"));
  if (!job_action(j->id, rest, err)) return r.respond(error(409, "conflict", err));
  r.respond(json_response(200, job_json(*j)));
}

void Service::stream_results(Job& j, OutputFormat f, server::Responder r) {
  auto store = store::SqliteStore::open(j.dir + "/journal.db");
  if (!store) return r.respond(error(500, "storage", store.error().message));
  auto d = std::make_unique<Download>(
      Download{std::move(*store), RecordFormatter(f, false), std::move(r), 0});
  auto info = d->journal->latest_job();
  std::string header;
  if (info && info->has_value()) {
    json o = json::parse((*info)->options_json, nullptr, false);
    if (!o.is_discarded()) {
      header =
          o.contains("header") && o["header"].is_string() ? o["header"].get<std::string>() : "";
      std::string dl = o.contains("delimiter") && o["delimiter"].is_string()
                           ? o["delimiter"].get<std::string>()
                           : ",";
      if (!header.empty())
        d->fmt.set_input_header(header, static_cast<unsigned char>(dl.empty() ? ',' : dl[0]));
    }
  }
  d->r.begin_chunked(200, {{"Content-Type", f == OutputFormat::Csv ? "text/csv; charset=utf-8"
                                                                   : "application/x-ndjson"}});
  d->r.write_chunk(d->fmt.header());
  downloads_.push_back(std::move(d));
  pump_downloads();
}

void Service::pump_downloads() {
  for (auto& d : downloads_) {
    while (d->r.alive() && d->r.pending_output() < (1u << 20)) {
      auto info = d->journal->latest_job();
      if (!info || !info->has_value()) {
        d->r.end_chunked();
        break;
      }
      auto page = d->journal->done_page((*info)->id, d->after, 1000);
      if (!page || page->empty()) {
        d->r.end_chunked();
        break;
      }
      std::string buf;
      for (const auto& row : *page) {
        if (auto res = pipeline::parse_json(row.record)) d->fmt.append(*res, row.raw, buf);
        d->after = row.line;
      }
      d->r.write_chunk(buf);
    }
  }
  std::erase_if(downloads_, [](const auto& d) { return !d->r.alive(); });
  if (!downloads_.empty() && !download_timer_armed_) {
    download_timer_armed_ = true;
    download_timer_ = e_.loop->add_timer(e_.loop->now() + std::chrono::milliseconds(10), *this, 1);
  }
}

}  // namespace mxp::app::serve_impl
