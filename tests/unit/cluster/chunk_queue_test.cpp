// ChunkOwner and ChunkWorker against a real redis-server on both loop backends: every chunk
// claimed by exactly one of two workers and every line's result delivered once; a worker that
// dies (stops renewing) loses its chunk to the other after min_idle and not before; a renewing
// worker keeps its chunk well past min_idle; completing twice publishes once; the owner's
// window keeps the streams' length and memory bounded over 200 chunks; Redis killed and
// restarted mid-job, with its append-only file or without any persistence (the owner's audit
// pushes the lost chunks again), loses nothing; and a restarted owner that pushes its chunks
// again gets each line once; a chunk's options travel with it; chunks given back are reclaimed
// at the next pass, not after min_idle; capacity changes claim at once.
#include "cluster/chunk_queue.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/functions.hpp"
#include "redis_fixture.hpp"

namespace mxp::cluster {
namespace {

using namespace std::chrono_literals;

class ChunkQueueTest : public testing::LoopFixture {
 protected:
  void TearDown() override {
    workers_.clear();
    owner_.reset();
    clients_.clear();
    server_.reset();
  }

  bool start(std::vector<std::string> extra = {}) {
    server_ = start_server(std::move(extra));
    return server_->ok();
  }
  RedisClient& new_client() {
    ClientOptions co;
    co.setup = {functions::load_command()};
    co.backoff_initial = 20ms;
    co.backoff_max = 200ms;
    clients_.push_back(client(server_->url(), co));
    return *clients_.back();
  }

  // The owner of job "j1", delivering into results_ and pushing the next chunks as room comes.
  ChunkOwner& owner(OwnerOptions o, size_t chunks, size_t lines_per_chunk, size_t text_bytes = 12) {
    owner_ = std::make_unique<ChunkOwner>(*loop_, new_client(), QueueOptions{}, "j1", o);
    total_chunks_ = chunks;
    lines_per_chunk_ = lines_per_chunk;
    text_bytes_ = text_bytes;
    owner_->on_results([this](ChunkResult&& r) {
      EXPECT_EQ(r.job, "j1");
      ++chunk_results_[r.seq];
      for (const auto& l : r.lines) {
        ++line_results_[l.line];
        EXPECT_EQ(l.text, "ok:" + record(l.line)) << "line " << l.line;
      }
      feed();
      poke();
    });
    std::optional<bool> opened;
    owner_->open([&](core::Expected<void, std::string> e) {
      EXPECT_TRUE(e.ok()) << e.error();
      opened = e.ok();
      poke();
    });
    EXPECT_TRUE(run_until([&] { return opened.has_value(); }, 10s));
    return *owner_;
  }
  std::string record(uint64_t line) const {
    std::string s = "user" + std::to_string(line) + "@example.com";
    s.resize(std::max(s.size(), text_bytes_), 'x');
    return s;
  }
  void feed() {
    while (next_chunk_ < total_chunks_ && owner_->room() > 0) {
      Chunk c;
      c.seq = next_chunk_;
      for (size_t i = 0; i < lines_per_chunk_; ++i) {
        const uint64_t line = next_chunk_ * lines_per_chunk_ + i + 1;
        c.lines.push_back({line, record(line)});
      }
      EXPECT_TRUE(owner_->push(std::move(c)));
      ++next_chunk_;
    }
  }
  static std::vector<ChunkLine> verify(const Chunk& c) {
    std::vector<ChunkLine> out;
    for (const auto& l : c.lines)
      out.push_back({l.line, "ok:" + l.text});
    return out;
  }
  ChunkWorker& worker(const std::string& name, WorkerOptions o, RedisClient* c = nullptr) {
    o.consumer = name;
    workers_.push_back(
        std::make_unique<ChunkWorker>(*loop_, c ? *c : new_client(), QueueOptions{}, o));
    return *workers_.back();
  }
  // Every line 1..total delivered exactly once.
  void expect_each_line_once() {
    const size_t total = total_chunks_ * lines_per_chunk_;
    EXPECT_EQ(line_results_.size(), total);
    size_t bad = 0;
    for (uint64_t line = 1; line <= total; ++line) {
      const auto it = line_results_.find(line);
      if (it == line_results_.end() || it->second != 1) ++bad;
    }
    EXPECT_EQ(bad, 0u) << "lines missing or delivered more than once";
    for (const auto& [seq, n] : chunk_results_)
      EXPECT_EQ(n, 1) << "chunk " << seq;
  }
  bool all_delivered() const { return line_results_.size() == total_chunks_ * lines_per_chunk_; }
  int64_t xlen(RedisClient& c, const std::string& key) { return reply(c, {"XLEN", key}).integer; }

  std::unique_ptr<testing::RedisServer> server_;
  std::vector<std::unique_ptr<RedisClient>> clients_;
  std::unique_ptr<ChunkOwner> owner_;
  std::vector<std::unique_ptr<ChunkWorker>> workers_;
  size_t total_chunks_ = 0, lines_per_chunk_ = 0, next_chunk_ = 0, text_bytes_ = 0;
  std::map<uint64_t, int> chunk_results_, line_results_;
};

WorkerOptions quick() {
  WorkerOptions o;
  o.capacity = 3;
  o.poll_min = 5ms;
  o.poll_max = 50ms;
  o.renew_every = 50ms;
  o.min_idle = 400ms;
  o.reclaim_every = 50ms;
  return o;
}

TEST_P(ChunkQueueTest, EachChunkClaimedByExactlyOneOfTwoWorkers) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.window = 30;
  oo.poll_min = 5ms;
  oo.poll_max = 50ms;
  ChunkOwner& o = owner(oo, 30, 10);
  std::map<uint64_t, std::vector<std::string>> claims;
  for (const std::string name : {"w1", "w2"}) {
    ChunkWorker& w = worker(name, quick());
    w.on_chunk([&, name, &w = w](Chunk&& c) {
      claims[c.seq].push_back(name);
      w.complete(c, verify(c));
    });
  }
  feed();
  EXPECT_EQ(o.outstanding(), 30u);
  for (auto& w : workers_)
    w->start();
  ASSERT_TRUE(run_until([&] { return all_delivered(); }, 30s));
  expect_each_line_once();
  ASSERT_EQ(claims.size(), 30u);
  for (const auto& [seq, who] : claims)
    EXPECT_EQ(who.size(), 1u) << "chunk " << seq << " claimed by " << who.size();
  EXPECT_EQ(workers_[0]->stats().completed + workers_[1]->stats().completed, 30u);
  EXPECT_EQ(workers_[0]->stats().reclaimed + workers_[1]->stats().reclaimed, 0u);
  EXPECT_EQ(o.outstanding(), 0u);
  EXPECT_EQ(o.stats().duplicate_chunks, 0u);
  // Nothing left behind: chunks acked and deleted, results read and deleted.
  ASSERT_TRUE(eventually(
      [&] {
        return xlen(*clients_[0], o.chunks_key()) == 0 && xlen(*clients_[0], o.results_key()) == 0;
      },
      5s));
  const Reply pending = reply(*clients_[0], {"XPENDING", o.chunks_key(), "workers"});
  EXPECT_EQ(pending.elements.at(0).integer, 0);
}

TEST_P(ChunkQueueTest, DeadWorkersChunkIsReclaimedAfterMinIdle) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 5ms;
  oo.poll_max = 50ms;
  owner(oo, 1, 5);
  WorkerOptions dying = quick();
  dying.capacity = 1;
  ChunkWorker& a = worker("dying", dying);
  std::optional<TimePoint> a_claimed;
  a.on_chunk([&](Chunk&&) {
    a_claimed = loop_->now();
    poke();
  });
  a.start();
  feed();
  ASSERT_TRUE(run_until([&] { return a_claimed.has_value(); }, 10s));
  // It dies holding the chunk: no completion, no more renewals.
  workers_.clear();

  WorkerOptions bo = quick();
  ChunkWorker& b = worker("heir", bo);
  std::optional<TimePoint> b_claimed;
  b.on_chunk([&](Chunk&& c) {
    b_claimed = loop_->now();
    b.complete(c, verify(c));
  });
  b.start();
  ASSERT_TRUE(run_until([&] { return all_delivered(); }, 20s));
  ASSERT_TRUE(b_claimed.has_value());
  EXPECT_EQ(b.stats().reclaimed, 1u);
  EXPECT_EQ(b.stats().claimed, 0u);
  // Not before min_idle since the dead worker's claim (a few ms of slack for the reply's trip).
  EXPECT_GE(*b_claimed - *a_claimed, bo.min_idle - 30ms);
  expect_each_line_once();
}

TEST_P(ChunkQueueTest, RenewingWorkerKeepsItsChunk) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 5ms;
  oo.poll_max = 50ms;
  owner(oo, 1, 5);
  WorkerOptions ao = quick();
  ao.capacity = 1;
  ChunkWorker& a = worker("busy", ao);
  std::optional<Chunk> held;
  a.on_chunk([&](Chunk&& c) {
    held = std::move(c);
    poke();
  });
  a.start();
  feed();
  ASSERT_TRUE(run_until([&] { return held.has_value(); }, 10s));
  ChunkWorker& b = worker("hungry", quick());
  int stolen = 0;
  b.on_chunk([&](Chunk&&) { ++stolen; });
  b.start();
  // Four times min_idle: the holder's renewals keep the chunk its own.
  run_for(4 * ao.min_idle);
  EXPECT_EQ(stolen, 0);
  EXPECT_EQ(b.stats().reclaimed, 0u);
  EXPECT_EQ(a.held(), 1u);
  EXPECT_EQ(a.stats().lost, 0u);
  EXPECT_GE(a.stats().renewals, 10u);
  std::optional<CompleteOutcome> out;
  a.complete(*held, verify(*held), [&](CompleteOutcome c) {
    out = c;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return out.has_value() && all_delivered(); }, 10s));
  EXPECT_EQ(*out, CompleteOutcome::Published);
  expect_each_line_once();
}

TEST_P(ChunkQueueTest, CompletingTwicePublishesOnce) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 1h;  // the owner reads only when told to, below
  oo.poll_max = 1h;
  ChunkOwner& o = owner(oo, 1, 4);
  ChunkWorker& w = worker("w", quick());
  std::optional<Chunk> held;
  w.on_chunk([&](Chunk&& c) {
    held = std::move(c);
    poke();
  });
  w.start();
  feed();
  ASSERT_TRUE(run_until([&] { return held.has_value(); }, 10s));
  std::vector<CompleteOutcome> outs;
  for (int i = 0; i < 2; ++i) {
    w.complete(*held, verify(*held), [&](CompleteOutcome c) {
      outs.push_back(c);
      poke();
    });
  }
  ASSERT_TRUE(run_until([&] { return outs.size() == 2; }, 10s));
  EXPECT_EQ(outs[0], CompleteOutcome::Published);
  EXPECT_EQ(outs[1], CompleteOutcome::AlreadyDone);
  RedisClient& c = *clients_[0];
  EXPECT_EQ(xlen(c, o.results_key()), 1);
  EXPECT_EQ(xlen(c, o.chunks_key()), 0);
  // A third time, later, from another worker: still nothing more.
  ChunkWorker& other = worker("other", quick());
  std::optional<CompleteOutcome> third;
  other.complete(*held, verify(*held), [&](CompleteOutcome x) {
    third = x;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return third.has_value(); }, 10s));
  EXPECT_EQ(*third, CompleteOutcome::AlreadyDone);
  EXPECT_EQ(xlen(c, o.results_key()), 1);
}

TEST_P(ChunkQueueTest, DroppedJobsChunksAreDiscarded) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 1h;
  oo.poll_max = 1h;
  ChunkOwner& o = owner(oo, 2, 3);
  feed();
  std::optional<bool> dropped;
  o.drop([&] {
    dropped = true;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return dropped.has_value(); }, 10s));
  ChunkWorker& w = worker("w", quick());
  std::vector<CompleteOutcome> outs;
  w.on_chunk([&](Chunk&& c) {
    w.complete(c, verify(c), [&](CompleteOutcome x) {
      outs.push_back(x);
      poke();
    });
  });
  w.start();
  ASSERT_TRUE(run_until([&] { return outs.size() == 2; }, 10s));
  EXPECT_EQ(outs[0], CompleteOutcome::JobGone);
  EXPECT_EQ(outs[1], CompleteOutcome::JobGone);
  EXPECT_EQ(reply(*clients_[0], {"EXISTS", o.results_key(), o.chunks_key()}).integer, 1)
      << "only the (shared, empty) chunk stream remains";
  EXPECT_EQ(xlen(*clients_[0], o.chunks_key()), 0);
}

TEST_P(ChunkQueueTest, WindowBoundsRedisMemory) {
  ASSERT_TRUE(start());
  constexpr size_t kWindow = 8, kChunks = 200, kLines = 50, kBytes = 100;
  OwnerOptions oo;
  oo.window = kWindow;
  oo.poll_min = 2ms;
  oo.poll_max = 20ms;
  ChunkOwner& o = owner(oo, kChunks, kLines, kBytes);
  for (const std::string name : {"w1", "w2"}) {
    ChunkWorker& w = worker(name, quick());
    w.on_chunk([&w = w](Chunk&& c) { w.complete(c, verify(c)); });
    w.start();
  }
  feed();
  // A sampler on its own connection: lengths and memory of both streams, every few ms.
  RedisClient& probe = new_client();
  int64_t max_len = 0, max_mem = 0;
  size_t samples = 0;
  bool sampling = false;
  struct Tick : loop::TimerHandler {
    std::function<void()> fn;
    void on_timer(loop::TimerId, uint64_t) override { fn(); }
  } tick;
  tick.fn = [&] {
    if (!sampling) {
      sampling = true;
      auto len = std::make_shared<int64_t>(0), mem = std::make_shared<int64_t>(0);
      for (const std::string& key : {o.chunks_key(), o.results_key()}) {
        probe.command({"XLEN", key}, [len](Result&& r) {
          if (r.ok()) *len += r->integer;
        });
        probe.command({"MEMORY", "USAGE", key, "SAMPLES", "0"}, [mem](Result&& r) {
          if (r.ok() && r->type == Reply::Type::Integer) *mem += r->integer;
        });
      }
      probe.command({"PING"}, [&, len, mem](Result&&) {
        max_len = std::max(max_len, *len);
        max_mem = std::max(max_mem, *mem);
        ++samples;
        sampling = false;
        poke();
      });
    }
    if (!all_delivered()) loop_->add_timer(loop_->now() + 3ms, tick);
  };
  loop_->add_timer(loop_->now(), tick);
  ASSERT_TRUE(run_until([&] { return all_delivered() && !sampling; }, 60s));
  expect_each_line_once();
  EXPECT_GE(samples, 20u);
  // Chunks in the stream plus results not yet read: never more than the window each.
  EXPECT_LE(max_len, static_cast<int64_t>(2 * kWindow));
  EXPECT_GT(max_len, 0);
  // One chunk entry is ~kLines * (kBytes + 12) bytes; without the window all 200 would be in
  // Redis at once (~1.1 MB). Allow two windows' worth plus per-stream overhead.
  const int64_t entry = kLines * (kBytes + 12);
  EXPECT_LE(max_mem, static_cast<int64_t>(2 * kWindow) * entry * 3 / 2 + 32 * 1024)
      << "max memory " << max_mem << " for entries of ~" << entry << " bytes";
  std::printf("window %zu: max stream entries %lld, max memory %lld bytes over %zu samples\n",
              kWindow, static_cast<long long>(max_len), static_cast<long long>(max_mem), samples);
}

TEST_P(ChunkQueueTest, RedisRestartWithAppendOnlyFileLosesNothing) {
  // fsync before each reply: a kill -9 of Redis loses nothing it acknowledged.
  ASSERT_TRUE(start({"--appendonly", "yes", "--appendfsync", "always"}));
  constexpr size_t kChunks = 60, kLines = 20;
  OwnerOptions oo;
  oo.window = 8;
  oo.poll_min = 2ms;
  oo.poll_max = 20ms;
  owner(oo, kChunks, kLines);
  for (const std::string name : {"w1", "w2"}) {
    ChunkWorker& w = worker(name, quick());
    w.on_chunk([&w = w](Chunk&& c) { w.complete(c, verify(c)); });
    w.start();
  }
  feed();
  ASSERT_TRUE(run_until([&] { return chunk_results_.size() >= 20; }, 30s));
  const size_t at_kill = chunk_results_.size();
  server_->kill();
  ASSERT_TRUE(server_->start()) << server_->error();
  ASSERT_TRUE(run_until([&] { return all_delivered(); }, 60s))
      << line_results_.size() << " of " << kChunks * kLines << " lines";
  expect_each_line_once();
  // The workers drain the chunk stream. A push that was in flight when Redis died was sent
  // again and may have landed twice: its second result waits, unread, on the results stream
  // (the owner had dropped it as a duplicate or reads no more once done) until the job is
  // dropped, which deletes it.
  RedisClient& c = *clients_[0];
  ASSERT_TRUE(eventually([&] { return xlen(c, owner_->chunks_key()) == 0; }, 5s));
  EXPECT_LE(xlen(c, owner_->results_key()), static_cast<int64_t>(owner_->stats().push_retries));
  std::optional<bool> dropped;
  owner_->drop([&] {
    dropped = true;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return dropped.has_value(); }, 10s));
  EXPECT_EQ(reply(c, {"EXISTS", owner_->results_key(), owner_->job_key()}).integer, 0);
  std::printf(
      "Redis restarted after %zu of %zu chunks: %llu pushes sent again, %llu duplicate "
      "results dropped, %llu completions sent again\n",
      at_kill, kChunks, static_cast<unsigned long long>(owner_->stats().push_retries),
      static_cast<unsigned long long>(owner_->stats().duplicate_chunks),
      static_cast<unsigned long long>(workers_[0]->stats().complete_retries +
                                      workers_[1]->stats().complete_retries));
  size_t handshakes = 0;
  for (auto& c : clients_)
    handshakes += c->connection().stats().handshakes;
  EXPECT_GE(handshakes, 2 * clients_.size() - 1) << "every client reconnected";
}

TEST_P(ChunkQueueTest, RedisRestartWithoutPersistenceLosesNothing) {
  // Redis comes back empty: the workers make the group again, the owner's audit finds its
  // outstanding chunks gone (and its job key) and pushes them again.
  ASSERT_TRUE(start());
  constexpr size_t kChunks = 40, kLines = 10;
  OwnerOptions oo;
  oo.window = 8;
  oo.poll_min = 2ms;
  oo.poll_max = 20ms;
  oo.audit_every = 100ms;
  owner(oo, kChunks, kLines);
  for (const std::string name : {"w1", "w2"}) {
    ChunkWorker& w = worker(name, quick());
    w.on_chunk([&w = w](Chunk&& c) { w.complete(c, verify(c)); });
    w.start();
  }
  feed();
  ASSERT_TRUE(run_until([&] { return chunk_results_.size() >= 10; }, 30s));
  server_->kill();
  ASSERT_TRUE(server_->start()) << server_->error();
  ASSERT_TRUE(run_until([&] { return all_delivered(); }, 60s))
      << line_results_.size() << " of " << kChunks * kLines << " lines";
  expect_each_line_once();
  EXPECT_GT(owner_->stats().resent, 0u);
}

TEST_P(ChunkQueueTest, RestartedOwnerPushesAgainAndGetsEachLineOnce) {
  // The owner dies with results waiting for it; its successor pushes again every chunk its
  // journal lacks (same seqs): the waiting results are delivered, the redone ones dropped.
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 1h;  // the first owner never reads
  oo.poll_max = 1h;
  owner(oo, 4, 5);
  ChunkWorker& w = worker("w", quick());
  w.on_chunk([&w](Chunk&& c) { w.complete(c, verify(c)); });
  w.start();
  feed();
  ASSERT_TRUE(eventually([&] { return w.stats().completed == 4; }, 10s));
  EXPECT_EQ(xlen(*clients_[0], owner_->results_key()), 4);
  owner_.reset();  // kill -9: nothing read, nothing dropped

  oo.poll_min = 2ms;
  oo.poll_max = 20ms;
  next_chunk_ = 0;
  ChunkOwner& again = owner(oo, 4, 5);
  feed();
  ASSERT_TRUE(run_until([&] { return all_delivered(); }, 10s));
  // The chunks were done twice; each second result was dropped as a duplicate, or waits unread
  // (the owner reads no more once nothing is outstanding) until the job is dropped.
  ASSERT_TRUE(eventually([&] { return w.stats().completed == 8; }, 10s));
  EXPECT_EQ(again.stats().duplicate_chunks +
                static_cast<uint64_t>(xlen(*clients_.back(), again.results_key())),
            4u);
  expect_each_line_once();
}

TEST_P(ChunkQueueTest, ChunkOptionsTravelWithTheChunk) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 1h;
  oo.poll_max = 1h;
  ChunkOwner& o = owner(oo, 0, 0);
  Chunk c;
  c.seq = 1;
  c.lines = {{7, "a@example.com"}};
  c.options = R"({"transcripts":true})";
  ASSERT_TRUE(o.push(std::move(c)));
  // An entry from an owner that sends no options (an older one): the worker reads "{}".
  reply(*clients_[0], {"XADD", o.chunks_key(), "*", "job", "j1", "seq", "2", "lines",
                       encode_lines({{8, "b@example.com"}})});
  ChunkWorker& w = worker("w", quick());
  std::map<uint64_t, std::string> opts;
  w.on_chunk([&](Chunk&& c) {
    opts[c.seq] = c.options;
    poke();
  });
  w.start();
  ASSERT_TRUE(run_until([&] { return opts.size() == 2; }, 10s));
  EXPECT_EQ(opts[1], R"({"transcripts":true})");
  EXPECT_EQ(opts[2], "{}");
}

TEST_P(ChunkQueueTest, GivenBackChunksAreReclaimedAtOnce) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 5ms;
  oo.poll_max = 50ms;
  owner(oo, 3, 2);
  WorkerOptions slow = quick();
  slow.min_idle = 30s;  // abandoned without give_back, the chunks would wait this long
  ChunkWorker& a = worker("leaving", slow);
  a.on_chunk([&](Chunk&&) { poke(); });
  a.start();
  feed();
  ASSERT_TRUE(run_until([&] { return a.held() == 3; }, 10s));
  std::optional<bool> back;
  a.give_back([&] {
    back = true;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return back.has_value(); }, 10s));
  EXPECT_EQ(a.held(), 0u);
  EXPECT_EQ(a.stats().given_back, 3u);
  // Still pending (nothing is lost if no worker is there), now idle for a day.
  const Reply pending = reply(*clients_[0], {"XPENDING", owner_->chunks_key(), "workers"});
  EXPECT_EQ(pending.elements.at(0).integer, 3);
  ChunkWorker& b = worker("heir", slow);
  b.on_chunk([&b](Chunk&& c) { b.complete(c, verify(c)); });
  const auto t0 = loop_->now();
  b.start();
  ASSERT_TRUE(run_until([&] { return all_delivered(); }, 10s));
  EXPECT_LT(loop_->now() - t0, 2s);
  EXPECT_EQ(b.stats().reclaimed, 3u);
  expect_each_line_once();
}

TEST_P(ChunkQueueTest, CapacityChangesTakeEffectAtOnce) {
  ASSERT_TRUE(start());
  OwnerOptions oo;
  oo.poll_min = 1h;
  oo.poll_max = 1h;
  owner(oo, 6, 1);
  WorkerOptions wo = quick();
  wo.capacity = 1;
  wo.poll_max = 1h;  // after the empty polls, only claim_now/set_capacity claim again soon
  wo.poll_min = 1h;
  ChunkWorker& w = worker("w", wo);
  w.on_chunk([&](Chunk&&) { poke(); });
  w.start();
  ASSERT_TRUE(eventually([&] { return w.stats().empty_polls >= 1; }, 10s));
  feed();
  w.claim_now();
  ASSERT_TRUE(run_until([&] { return w.held() == 1; }, 10s));
  w.set_capacity(4);
  ASSERT_TRUE(run_until([&] { return w.held() == 4; }, 10s));
  EXPECT_EQ(w.capacity(), 4u);
  w.set_capacity(0);
  EXPECT_EQ(w.capacity(), 1u) << "at least one";
}

INSTANTIATE_TEST_SUITE_P(Backends, ChunkQueueTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         testing::backend_name);

}  // namespace
}  // namespace mxp::cluster
