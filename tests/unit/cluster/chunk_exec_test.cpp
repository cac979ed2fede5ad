// ChunkExecutor (a worker node's side of the cluster's jobs) against a real redis-server on both
// loop backends, with a stand-in verifier that answers from the loop like the real one: a chunk
// pushed by a ChunkOwner comes back with one record per line (a bad address answered at once as
// invalid syntax), with or without transcripts as the job asks; two nodes share a domain's
// catch-all fact (one probes, the other's lines wait and use it); the shared results cache
// answers a repeat without a verification; the chunks held grow with the lines waiting for a
// retry; stop() hands chunks back and another node completes them long before min_idle; a chunk
// lost to another node is harmless.
#include "app/chunk_exec.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/functions.hpp"
#include "redis_fixture.hpp"

namespace mxp::app {
namespace {

using namespace std::chrono_literals;
using cluster::ChunkLine;
using cluster::RedisClient;

// Answers submitted addresses from the loop after `delay`, like the verifier (never inside
// submit). With `probe`: asks the executor for the domain's catch-all fact and, when unknown,
// "probes" it (probe_delay) and reports what it learned before answering the domain's lines.
class FakeVerifier final : private loop::TimerHandler {
 public:
  FakeVerifier(loop::Loop& loop, std::function<void()> poke)
      : loop_(loop), poke_(std::move(poke)) {}
  ~FakeVerifier() {
    if (armed_) loop_.cancel_timer(timer_);
  }
  ChunkExecutor* exec = nullptr;
  cluster::Duration delay = 2ms;
  bool hold = false;  // answer nothing (until answer_all)
  bool probe = false;
  cluster::Duration probe_delay = 300ms;
  bool probe_says = true;
  int probes = 0;
  size_t submitted = 0;

  void submit(uint64_t id, std::string email, address::Address addr) {
    ++submitted;
    queue_.push_back({id, std::move(email), std::move(addr), loop_.now() + delay});
    if (!hold) arm(delay);
  }
  void answer_all() {
    hold = false;
    arm(0ms);
  }

 private:
  struct Item {
    uint64_t id;
    std::string email;
    address::Address addr;
    cluster::TimePoint due;
  };
  void arm(cluster::Duration d) {
    if (armed_) return;
    timer_ = loop_.add_timer(loop_.now() + d, *this);
    armed_ = true;
  }
  void on_timer(loop::TimerId, uint64_t) override {
    armed_ = false;
    if (hold) return;
    std::deque<Item> later;
    while (!queue_.empty()) {
      Item it = std::move(queue_.front());
      queue_.pop_front();
      std::optional<bool> ca;
      if (probe) {
        ca = exec->known_catch_all(it.addr.domain);
        if (!ca) {
          auto p = probing_.find(it.addr.domain);
          if (p == probing_.end()) {
            ++probes;
            probing_[it.addr.domain] = loop_.now() + probe_delay;
            later.push_back(std::move(it));
            continue;
          }
          if (loop_.now() < p->second) {
            later.push_back(std::move(it));
            continue;
          }
          if (!learned_.count(it.addr.domain)) {
            learned_[it.addr.domain] = probe_says;
            exec->learned_catch_all(it.addr.domain, probe_says);
          }
          ca = probe_says;
        }
      }
      pipeline::Result r;
      r.id = it.id;
      r.email = it.email;
      r.normalized = it.addr.normalized();
      r.domain = it.addr.domain;
      r.verdict = Verdict::Deliverable;
      r.reason = Reason::Accepted;
      r.catch_all = ca;
      r.has_smtp = true;
      r.code = 250;
      r.message = "OK";
      r.checked_at = std::chrono::system_clock::now();
      r.transcript = "C: RCPT TO:<" + it.email + ">\nS: 250 OK\n";
      exec->deliver(std::move(r));
    }
    queue_ = std::move(later);
    if (!queue_.empty()) arm(20ms);
    poke_();
  }

  loop::Loop& loop_;
  std::function<void()> poke_;
  std::deque<Item> queue_;
  std::map<std::string, cluster::TimePoint> probing_;
  std::map<std::string, bool> learned_;
  loop::TimerId timer_{};
  bool armed_ = false;
};

class ChunkExecTest : public cluster::testing::LoopFixture {
 protected:
  void TearDown() override {
    execs_.clear();
    fakes_.clear();
    owner_.reset();
    clients_.clear();
    server_.reset();
  }
  bool start() {
    server_ = start_server();
    return server_->ok();
  }
  cluster::RedisClient& new_client() {
    cluster::ClientOptions co;
    co.setup = {cluster::functions::load_command()};
    co.backoff_initial = 20ms;
    co.backoff_max = 200ms;
    clients_.push_back(client(server_->url(), co));
    return *clients_.back();
  }
  // The owner of job "j1": results into results_ by line (each line counted).
  cluster::ChunkOwner& owner() {
    cluster::OwnerOptions oo;
    oo.window = 16;
    oo.poll_min = 5ms;
    oo.poll_max = 50ms;
    owner_ = std::make_unique<cluster::ChunkOwner>(*loop_, new_client(), cluster::QueueOptions{},
                                                   "j1", oo);
    owner_->on_results([this](cluster::ChunkResult&& r) {
      for (auto& l : r.lines) {
        ++counts_[l.line];
        results_[l.line] = std::move(l.text);
      }
      poke();
    });
    std::optional<bool> opened;
    owner_->open([&](core::Expected<void, std::string> e) {
      opened = e.ok();
      poke();
    });
    EXPECT_TRUE(run_until([&] { return opened.has_value(); }, 10s));
    return *owner_;
  }
  void push(uint64_t seq, std::vector<ChunkLine> lines, std::string options = "{}") {
    cluster::Chunk c;
    c.seq = seq;
    c.lines = std::move(lines);
    c.options = std::move(options);
    expected_ += c.lines.size();
    ASSERT_TRUE(owner_->push(std::move(c)));
  }
  static ExecutorOptions quick(const std::string& node) {
    ExecutorOptions o;
    o.node = node;
    o.chunks = 1;
    o.max_chunks = 8;
    o.catch_all_poll = 20ms;
    o.resize_every = 20ms;
    o.timing.poll_min = 5ms;
    o.timing.poll_max = 50ms;
    o.timing.renew_every = 50ms;
    o.timing.min_idle = 400ms;
    o.timing.reclaim_every = 50ms;
    return o;
  }
  // An executor with its stand-in verifier, on its own connection (a node of its own).
  std::pair<ChunkExecutor*, FakeVerifier*> node(ExecutorOptions o,
                                                std::function<size_t()> waiting = {}) {
    fakes_.push_back(std::make_unique<FakeVerifier>(*loop_, [this] { poke(); }));
    FakeVerifier* f = fakes_.back().get();
    ExecutorHooks h;
    h.submit = [f](uint64_t id, std::string email, address::Address a) {
      f->submit(id, std::move(email), std::move(a));
    };
    h.waiting = std::move(waiting);
    execs_.push_back(std::make_unique<ChunkExecutor>(*loop_, new_client(), h, std::move(o)));
    f->exec = execs_.back().get();
    return {execs_.back().get(), f};
  }
  bool all_back() const { return results_.size() == expected_; }
  void expect_each_line_once() {
    EXPECT_EQ(results_.size(), expected_);
    for (const auto& [line, n] : counts_)
      EXPECT_EQ(n, 1) << "line " << line;
  }
  pipeline::Result record(uint64_t line) {
    auto r = pipeline::parse_json(results_[line]);
    EXPECT_TRUE(r.ok()) << "line " << line << ": " << results_[line];
    return r.ok() ? std::move(*r) : pipeline::Result{};
  }

  std::unique_ptr<cluster::testing::RedisServer> server_;
  std::vector<std::unique_ptr<cluster::RedisClient>> clients_;
  std::unique_ptr<cluster::ChunkOwner> owner_;
  std::vector<std::unique_ptr<FakeVerifier>> fakes_;
  std::vector<std::unique_ptr<ChunkExecutor>> execs_;
  std::map<uint64_t, std::string> results_;
  std::map<uint64_t, int> counts_;
  size_t expected_ = 0;
};

std::vector<ChunkLine> lines(uint64_t first, const std::vector<std::string>& emails) {
  std::vector<ChunkLine> out;
  for (const auto& e : emails)
    out.push_back({first++, e});
  return out;
}

TEST_P(ChunkExecTest, ChunkComesBackWithOneRecordPerLine) {
  ASSERT_TRUE(start());
  owner();
  auto n_x = node(quick("n1"));
  ChunkExecutor* x = n_x.first;
  [[maybe_unused]] FakeVerifier* f = n_x.second;
  x->start();
  push(0, lines(101, {"alice@a.example", "not an address", "Bob@B.example", "carol@a.example"}));
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
  expect_each_line_once();
  EXPECT_EQ(f->submitted, 3u) << "the bad address is answered without a verification";
  const auto bad = record(102);
  EXPECT_EQ(bad.verdict, Verdict::Undeliverable);
  EXPECT_EQ(bad.reason, Reason::InvalidSyntax);
  EXPECT_EQ(bad.email, "not an address");
  EXPECT_FALSE(bad.error.empty());
  const auto bob = record(103);
  EXPECT_EQ(bob.verdict, Verdict::Deliverable);
  EXPECT_EQ(bob.email, "Bob@B.example");
  EXPECT_EQ(bob.normalized, "Bob@b.example");
  EXPECT_TRUE(bob.transcript.empty()) << "the job did not ask for transcripts";
  EXPECT_NE(results_[103].back(), '\n') << "records travel without their final newline";
  ASSERT_TRUE(eventually([&] { return x->stats().chunks_completed == 1; }, 5s));
  EXPECT_EQ(x->stats().lines_verified, 3u);
  EXPECT_EQ(x->stats().lines_invalid, 1u);
  EXPECT_EQ(x->held(), 0u);
  // Its own commands: the domains' catch-all facts in one call (both claimed: unknown), and one
  // release of both claims once their lines ended without a probe (this verifier never probes).
  EXPECT_EQ(x->stats().redis_commands, 2u);
  EXPECT_EQ(x->stats().catch_all_probes, 2u);
  EXPECT_EQ(reply(*clients_[0], {"EXISTS", "mxp:ca:a.example", "mxp:ca:b.example"}).integer, 0);
  // A second chunk of those domains does not claim them again.
  push(1, lines(105, {"dan@a.example"}));
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
  EXPECT_EQ(x->stats().redis_commands, 2u);
  ASSERT_TRUE(eventually([&] { return x->stats().chunks_completed == 2; }, 5s));
  std::string metrics;
  x->append_prometheus(metrics);
  EXPECT_NE(metrics.find("# TYPE mxprobe_cluster_chunks_completed_total counter\n"
                         "mxprobe_cluster_chunks_completed_total 2\n"),
            std::string::npos)
      << metrics;
}

TEST_P(ChunkExecTest, TranscriptsAsTheJobAsks) {
  ASSERT_TRUE(start());
  owner();
  auto n_x = node(quick("n1"));
  ChunkExecutor* x = n_x.first;
  [[maybe_unused]] FakeVerifier* f = n_x.second;
  x->start();
  push(0, lines(1, {"a@t.example", "b@t.example"}), R"({"transcripts": true, "future": 7})");
  push(1, lines(3, {"c@t.example"}), R"({"transcripts": false})");
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
  expect_each_line_once();
  EXPECT_EQ(record(1).transcript, "C: RCPT TO:<a@t.example>\nS: 250 OK\n");
  EXPECT_EQ(record(2).transcript, "C: RCPT TO:<b@t.example>\nS: 250 OK\n");
  EXPECT_TRUE(record(3).transcript.empty());
}

TEST_P(ChunkExecTest, TwoNodesShareOneCatchAllProbe) {
  ASSERT_TRUE(start());
  owner();
  auto n_x1 = node(quick("n1"));
  ChunkExecutor* x1 = n_x1.first;
  [[maybe_unused]] FakeVerifier* f1 = n_x1.second;
  auto n_x2 = node(quick("n2"));
  ChunkExecutor* x2 = n_x2.first;
  [[maybe_unused]] FakeVerifier* f2 = n_x2.second;
  for (FakeVerifier* f : {f1, f2})
    f->probe = true;
  // Each node holds one chunk, and the probe outlasts both claims: the second node's lines
  // arrive while the first probes.
  push(0, lines(1, {"a@shared.example", "b@shared.example", "x@solo1.example"}));
  push(1, lines(4, {"c@shared.example", "d@shared.example", "y@solo2.example"}));
  x1->start();
  x2->start();
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
  expect_each_line_once();
  EXPECT_EQ(x1->stats().chunks_claimed, 1u);
  EXPECT_EQ(x2->stats().chunks_claimed, 1u);
  // shared.example probed once in all; each node's own domain by that node.
  EXPECT_EQ(f1->probes + f2->probes, 3);
  EXPECT_EQ(x1->stats().catch_all_probes + x2->stats().catch_all_probes, 3u);
  EXPECT_EQ(x1->stats().catch_all_used + x2->stats().catch_all_used, 1u);
  EXPECT_EQ(x1->stats().catch_all_waited + x2->stats().catch_all_waited, 2u)
      << "the other node's two lines waited for the fact";
  for (uint64_t line = 1; line <= 6; ++line)
    EXPECT_EQ(record(line).catch_all, std::optional<bool>(true)) << "line " << line;
  // The fact stays in Redis for catch_all_ttl.
  RedisClient& c = *clients_[0];
  EXPECT_EQ(reply(c, {"GET", "mxp:ca:shared.example"}).str, "1");
  const int64_t ttl = reply(c, {"PTTL", "mxp:ca:shared.example"}).integer;
  EXPECT_GT(ttl, 6 * 24 * 3600 * 1000LL);
}

TEST_P(ChunkExecTest, InconclusiveProbeReleasesTheClaim) {
  ASSERT_TRUE(start());
  owner();
  auto n_x = node(quick("n1"));
  ChunkExecutor* x = n_x.first;
  FakeVerifier* f = n_x.second;
  f->hold = true;  // the line stays with the verifier while it "probes"
  x->start();
  push(0, lines(1, {"a@maybe.example"}));
  RedisClient& c = *clients_[0];
  ASSERT_TRUE(eventually([&] { return f->submitted == 1; }, 5s));
  EXPECT_EQ(reply(c, {"GET", "mxp:ca:maybe.example"}).str.rfind("p:n1:", 0), 0u)
      << "this node holds the claim while it probes";
  x->learned_catch_all("maybe.example", std::nullopt);
  ASSERT_TRUE(eventually(
      [&] {
        return reply(c, {"EXISTS", "mxp:ca:maybe.example"}).integer == 0;
      },
      5s));
  EXPECT_EQ(x->stats().catch_all_shared, 0u);
  f->answer_all();
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
}

TEST_P(ChunkExecTest, SharedCacheAnswersTheRepeat) {
  ASSERT_TRUE(start());
  owner();
  ExecutorOptions o = quick("n1");
  o.cache_ttl = 60s;
  auto n_x = node(o);
  ChunkExecutor* x = n_x.first;
  [[maybe_unused]] FakeVerifier* f = n_x.second;
  x->start();
  push(0, lines(1, {"dave@c.example"}), R"({"transcripts": true})");
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
  RedisClient& c = *clients_[0];
  ASSERT_TRUE(eventually(
      [&] {
        return reply(c, {"EXISTS", "mxp:rc:dave@c.example"}).integer == 1;
      },
      5s));
  const int64_t ttl = reply(c, {"PTTL", "mxp:rc:dave@c.example"}).integer;
  EXPECT_GT(ttl, 50'000);
  EXPECT_LE(ttl, 60'000);
  // A second job line with the same address (as typed differently in the domain's case).
  push(1, lines(2, {"dave@C.Example", "erin@c.example"}), R"({"transcripts": true})");
  ASSERT_TRUE(run_until([&] { return all_back(); }, 10s));
  expect_each_line_once();
  EXPECT_EQ(f->submitted, 2u) << "dave was answered from the cache";
  EXPECT_EQ(x->stats().cache_hits, 1u);
  const auto first = record(1), again = record(2);
  EXPECT_FALSE(first.cached);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.email, "dave@C.Example");
  EXPECT_EQ(again.verdict, Verdict::Deliverable);
  EXPECT_TRUE(again.transcript.empty()) << "the cache keeps no transcript";
  EXPECT_EQ(pipeline::iso8601(again.checked_at), pipeline::iso8601(first.checked_at));
  EXPECT_FALSE(record(3).cached);
}

TEST_P(ChunkExecTest, CapacityGrowsWithWaitingLines) {
  ASSERT_TRUE(start());
  owner();
  size_t waiting = 0;
  ExecutorOptions o = quick("n1");
  o.chunks = 1;
  o.max_chunks = 5;
  auto n_x = node(o, [&] { return waiting; });
  ChunkExecutor* x = n_x.first;
  [[maybe_unused]] FakeVerifier* f = n_x.second;
  f->hold = true;  // every line waits
  for (uint64_t s = 0; s < 8; ++s) {
    std::vector<std::string> emails;
    for (int i = 0; i < 10; ++i)
      emails.push_back("u" + std::to_string(s * 10 + i) + "@w.example");
    push(s, lines(s * 10 + 1, emails));
  }
  x->start();
  ASSERT_TRUE(eventually([&] { return x->held() == 1; }, 5s));
  run_for(200ms);
  EXPECT_EQ(x->held(), 1u) << "nothing waits for a retry: one chunk";
  waiting = 25;  // two and a half chunks' worth of lines wait: three more chunks
  ASSERT_TRUE(eventually([&] { return x->held() == 4; }, 5s));
  EXPECT_EQ(x->capacity(), 4u);
  waiting = 1000;
  ASSERT_TRUE(eventually([&] { return x->held() == 5; }, 5s));
  run_for(200ms);
  EXPECT_EQ(x->held(), 5u) << "never past max_chunks";
  waiting = 0;
  ASSERT_TRUE(eventually([&] { return x->capacity() == 1; }, 5s));
  f->answer_all();
  ASSERT_TRUE(run_until([&] { return all_back(); }, 20s));
  expect_each_line_once();
}

TEST_P(ChunkExecTest, StopHandsChunksBackAtOnce) {
  ASSERT_TRUE(start());
  owner();
  ExecutorOptions slow = quick("leaving");
  slow.chunks = 2;
  slow.timing.min_idle = 30s;  // a chunk abandoned without give-back would wait this long
  auto n_x1 = node(slow);
  ChunkExecutor* x1 = n_x1.first;
  [[maybe_unused]] FakeVerifier* f1 = n_x1.second;
  f1->hold = true;
  push(0, lines(1, {"a@s.example", "b@s.example"}));
  push(1, lines(3, {"c@s.example"}));
  x1->start();
  ASSERT_TRUE(eventually([&] { return x1->held() == 2 && f1->submitted == 3; }, 5s));
  std::optional<bool> back;
  x1->stop([&] {
    back = true;
    poke();
  });
  ASSERT_TRUE(run_until([&] { return back.has_value(); }, 5s));
  EXPECT_EQ(x1->held(), 0u);
  EXPECT_EQ(x1->stats().chunks_given_back, 2u);
  ExecutorOptions heir = quick("heir");
  heir.chunks = 2;
  heir.timing.min_idle = 30s;
  auto n_x2 = node(heir);
  ChunkExecutor* x2 = n_x2.first;
  [[maybe_unused]] FakeVerifier* f2 = n_x2.second;
  const auto t0 = loop_->now();
  x2->start();
  ASSERT_TRUE(run_until([&] { return all_back(); }, 5s));
  EXPECT_LT(loop_->now() - t0, 2s) << "taken at the heir's first reclaim pass, not after min_idle";
  EXPECT_EQ(x2->stats().chunks_claimed, 2u);
  EXPECT_EQ(x2->queue().stats().reclaimed, 2u);
  // The leaving node's verifier finishes its lines anyway: dropped, nothing published twice.
  f1->answer_all();
  ASSERT_TRUE(eventually([&] { return x1->stats().lines_dropped == 3; }, 5s));
  run_for(100ms);
  expect_each_line_once();
  EXPECT_EQ(x1->stats().chunks_completed, 0u);
}

TEST_P(ChunkExecTest, LostChunkIsHarmless) {
  ASSERT_TRUE(start());
  owner();
  ExecutorOptions a = quick("stalled");
  // Renews too rarely for min_idle: the chunk goes to the other node, as if this one hung. Its
  // verifier is slow too, and probes the domain (the other node's lines wait for that fact).
  a.timing.renew_every = 1s;
  a.timing.min_idle = 300ms;
  auto n_x1 = node(a);
  ChunkExecutor* x1 = n_x1.first;
  FakeVerifier* f1 = n_x1.second;
  f1->delay = 1500ms;
  f1->probe = true;
  f1->probe_delay = 100ms;
  push(0, lines(1, {"a@l.example", "b@l.example"}));
  x1->start();
  ASSERT_TRUE(eventually([&] { return f1->submitted == 2; }, 5s));
  ExecutorOptions b = quick("other");
  b.timing.min_idle = 300ms;
  auto n_x2 = node(b);
  ChunkExecutor* x2 = n_x2.first;
  FakeVerifier* f2 = n_x2.second;
  f2->probe = true;
  x2->start();
  ASSERT_TRUE(run_until([&] { return all_back(); }, 5s));
  ASSERT_TRUE(eventually([&] { return x1->stats().lines_dropped == 2; }, 5s));
  EXPECT_EQ(x1->stats().chunks_lost, 1u);
  EXPECT_EQ(x1->held(), 0u);
  run_for(100ms);
  expect_each_line_once();
  EXPECT_EQ(x1->stats().chunks_completed, 0u);
  EXPECT_EQ(x2->stats().chunks_completed, 1u);
  EXPECT_EQ(x2->queue().stats().reclaimed, 1u);
  EXPECT_EQ(f1->probes + f2->probes, 1) << "the lost chunk's probe still served the other node";
  EXPECT_EQ(x2->stats().catch_all_waited, 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ChunkExecTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         cluster::testing::backend_name);

}  // namespace
}  // namespace mxp::app
