// Redis commands per chunk and per line through the chunk queue (engine/cluster/chunk_queue.hpp):
// one owner and two workers on one loop move a job through a redis-server this benchmark starts
// itself (127.0.0.1, a free port in 17000-19999, its own temporary directory, no persistence).
// The workers "verify" each chunk in `verify_ms` (a timer; 0 = at once, Redis' speed alone), so
// the polls an owner and its workers spend while chunks are being worked on show up as they
// would in a real job.
//
// Counters per chunk: push (XADD), claim (XREADGROUP polls), complete (FCALL), results (the
// owner's XREAD polls and XDELs), other (renewals, reclaims, group set-up), all from the clients'
// own counts. cmds/chunk is their sum: the commands (round trips) nodes send, the figure the
// issue's "at most 1 Redis command per 20 verifications" is about, and lines/cmd how many
// verifications one pays for. redis_calls/chunk is Redis' total_commands_processed over the
// run (our INFO reads taken out), which also counts the calls made inside Redis functions
// (mxp1_chunk_complete runs four): the work Redis does, for sizing it.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

#include "cluster/chunk_queue.hpp"
#include "cluster/functions.hpp"
#include "loop/loop.hpp"
#include "redis_server.hpp"

namespace {

using namespace mxp;
using namespace mxp::cluster;
using namespace std::chrono_literals;

// Runs the loop until `done` holds, checked every millisecond of loop time (or 120 s pass).
bool run_until(loop::Loop& loop, const std::function<bool()>& done) {
  struct Tick : loop::TimerHandler {
    loop::Loop* loop = nullptr;
    const std::function<bool()>* done = nullptr;
    TimePoint end;
    void on_timer(loop::TimerId, uint64_t) override {
      if ((*done)() || loop->now() > end) {
        loop->stop();
      } else {
        loop->add_timer(loop->now() + 1ms, *this);
      }
    }
  } tick;
  tick.loop = &loop;
  tick.done = &done;
  tick.end = loop.now() + 120s;
  loop.add_timer(loop.now(), tick);
  loop.run();
  return done();
}

std::unique_ptr<RedisClient> make_client(loop::Loop& loop, const std::string& url) {
  ClientOptions o;
  o.url = *parse_redis_url(url);
  o.setup = {functions::load_command()};
  auto c = RedisClient::create(loop, o);
  return c.ok() ? std::move(*c) : nullptr;
}

// Redis' count of commands from clients (commands inside functions are not counted).
int64_t commands_processed(loop::Loop& loop, RedisClient& c) {
  int64_t n = -1;
  c.command({"INFO", "stats"}, [&](Result&& r) {
    n = 0;
    if (!r.ok()) return;
    const auto at = r->str.find("total_commands_processed:");
    if (at != std::string::npos) n = std::stoll(r->str.substr(at + 25));
  });
  run_until(loop, [&] { return n >= 0; });
  return n;
}

void BM_ChunkQueue(benchmark::State& state) {
  const size_t lines_per_chunk = static_cast<size_t>(state.range(0));
  const size_t window = static_cast<size_t>(state.range(1));
  const auto verify_time = std::chrono::milliseconds(state.range(2));
  const size_t chunks = static_cast<size_t>(state.range(3));

  testing::RedisServer server;
  if (!server.ok()) {
    state.SkipWithError(server.error().c_str());
    return;
  }
  auto made = loop::make_loop({});
  if (!made.loop) {
    state.SkipWithError(made.why.c_str());
    return;
  }
  loop::Loop& loop = *made.loop;
  auto owner_client = make_client(loop, server.url());
  auto worker_client = make_client(loop, server.url());
  auto probe = make_client(loop, server.url());

  uint64_t total_chunks = 0, owner_cmds = 0, worker_cmds = 0, pushes = 0, claims = 0, completes = 0,
           renewals = 0, results_polls = 0, redis_cmds = 0;
  std::string job_id;
  int job = 0;
  for (auto _ : state) {
    job_id = "bench" + std::to_string(job++);
    const auto owner_before = owner_client->connection().stats().issued;
    const auto worker_before = worker_client->connection().stats().issued;
    const int64_t redis_before = commands_processed(loop, *probe);

    OwnerOptions oo;
    oo.window = window;
    ChunkOwner owner(loop, *owner_client, QueueOptions{}, job_id, oo);
    std::vector<std::unique_ptr<ChunkWorker>> workers;
    struct Verify : loop::TimerHandler {
      std::map<uint64_t, std::pair<ChunkWorker*, Chunk>> held;
      uint64_t next = 0;
      void on_timer(loop::TimerId, uint64_t cookie) override {
        auto it = held.find(cookie);
        std::vector<ChunkLine> out;
        for (const auto& l : it->second.second.lines)
          out.push_back({l.line, "deliverable"});
        it->second.first->complete(it->second.second, std::move(out));
        held.erase(it);
      }
    } verify;
    for (const char* name : {"bench-w1", "bench-w2"}) {
      WorkerOptions wo;
      wo.consumer = name;
      wo.capacity = window / 2 > 0 ? window / 2 : 1;
      workers.push_back(std::make_unique<ChunkWorker>(loop, *worker_client, QueueOptions{}, wo));
      ChunkWorker* w = workers.back().get();
      w->on_chunk([&, w](Chunk&& c) {
        const uint64_t id = verify.next++;
        verify.held.emplace(id, std::make_pair(w, std::move(c)));
        loop.add_timer(loop.now() + verify_time, verify, id);
      });
    }
    size_t next = 0, delivered = 0;
    auto feed = [&] {
      while (next < chunks && owner.room() > 0) {
        Chunk c;
        c.seq = next;
        for (size_t i = 0; i < lines_per_chunk; ++i) {
          const uint64_t line = next * lines_per_chunk + i + 1;
          c.lines.push_back({line, "user" + std::to_string(line) + "@example.com"});
        }
        owner.push(std::move(c));
        ++next;
      }
    };
    owner.on_results([&](ChunkResult&&) {
      ++delivered;
      feed();
    });
    owner.open();
    feed();
    for (auto& w : workers)
      w->start();
    if (!run_until(loop, [&] { return delivered == chunks; })) {
      state.SkipWithError("the job did not finish within 120 s");
      return;
    }
    for (auto& w : workers)
      w->stop();
    owner.drop();
    bool dropped = false;
    probe->command({"PING"}, [&](Result&&) { dropped = true; });
    run_until(loop, [&] { return dropped; });

    total_chunks += chunks;
    owner_cmds += owner_client->connection().stats().issued - owner_before;
    worker_cmds += worker_client->connection().stats().issued - worker_before;
    redis_cmds += static_cast<uint64_t>(commands_processed(loop, *probe) - redis_before - 2);
    pushes += owner.stats().pushed;
    results_polls += owner.stats().polls;
    for (auto& w : workers) {
      claims += w->stats().polls;
      completes += w->stats().completed + w->stats().already_done + w->stats().complete_retries;
      renewals += w->stats().renewals;
    }
  }
  const double n = static_cast<double>(total_chunks);
  const double lines = n * static_cast<double>(lines_per_chunk);
  const double results_cmds = static_cast<double>(owner_cmds - pushes);
  const double other = static_cast<double>(worker_cmds - claims - completes);
  state.counters["chunks/s"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
  state.counters["push"] = static_cast<double>(pushes) / n;
  state.counters["claim"] = static_cast<double>(claims) / n;
  state.counters["complete"] = static_cast<double>(completes) / n;
  state.counters["results"] = results_cmds / n;
  state.counters["other"] = other / n;
  const double client = static_cast<double>(owner_cmds + worker_cmds);
  state.counters["cmds/chunk"] = client / n;
  state.counters["lines/cmd"] = lines / client;
  state.counters["redis_calls/chunk"] = static_cast<double>(redis_cmds) / n;
  state.counters["lines/redis_call"] = lines / static_cast<double>(redis_cmds);
  (void)renewals;
  (void)results_polls;
}

// lines per chunk, window, verification time per chunk (ms), chunks per job.
BENCHMARK(BM_ChunkQueue)
    ->ArgNames({"lines", "window", "verify_ms", "chunks"})
    ->Args({1000, 8, 0, 200})
    ->Args({100, 8, 0, 200})
    ->Args({1000, 8, 200, 40})
    ->Args({1000, 8, 6000, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
