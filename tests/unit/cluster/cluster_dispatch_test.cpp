// ClusterDispatch (app/job/cluster_dispatch.hpp), the owner's side of a cluster job, against a
// real redis-server on both loop backends, with plain ChunkWorkers standing in for the nodes:
// every submitted address comes back once under its id with the record the node made; the
// window bounds the chunks in Redis; a part chunk goes out after the quiet time; a pause takes
// back only what was not sent; a record that does not read is an unknown that says so; a
// dropped job's chunks are discarded by the nodes.
#include "app/job/cluster_dispatch.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cluster/functions.hpp"
#include "redis_fixture.hpp"

namespace mxp::app {
namespace {

using namespace std::chrono_literals;
using cluster::Chunk;
using cluster::ChunkLine;
using cluster::ChunkWorker;
using cluster::RedisClient;

class ClusterDispatchTest : public cluster::testing::LoopFixture {
 protected:
  void TearDown() override {
    workers_.clear();
    dispatch_.reset();
    clients_.clear();
    server_.reset();
  }
  RedisClient& new_client() {
    cluster::ClientOptions co;
    co.setup = {cluster::functions::load_command()};
    co.backoff_initial = 20ms;
    co.backoff_max = 200ms;
    clients_.push_back(client(server_->url(), co));
    return *clients_.back();
  }
  ClusterDispatch& dispatch(DispatchOptions o) {
    o.owner.poll_min = 5ms;
    o.owner.poll_max = 50ms;
    dispatch_ = std::make_unique<ClusterDispatch>(
        *loop_, new_client(), "job-a", R"({"transcripts":false})",
        [this](pipeline::Result&& r) {
          ++delivered_[r.id];
          results_[r.id] = std::move(r);
          max_outstanding_ = std::max(max_outstanding_, dispatch_->outstanding_chunks());
          poke();
        },
        o);
    dispatch_->open();
    return *dispatch_;
  }
  // A node: answers each line with a record (deliverable, the address normalized), or with
  // `garbage` for the lines whose address starts with "bad".
  ChunkWorker& node(const std::string& name, bool answer = true) {
    cluster::WorkerOptions o;
    o.consumer = name;
    o.capacity = 2;
    o.poll_min = 5ms;
    o.poll_max = 50ms;
    workers_.push_back(
        std::make_unique<ChunkWorker>(*loop_, new_client(), cluster::QueueOptions{}, o));
    ChunkWorker& w = *workers_.back();
    w.on_chunk([this, &w, answer](Chunk&& c) {
      chunk_sizes_.push_back(c.lines.size());
      if (!answer) return;
      std::vector<ChunkLine> out;
      for (const auto& l : c.lines) {
        std::string text;
        if (l.text.starts_with("bad")) {
          text = "garbage";
        } else {
          pipeline::Result r;
          r.email = r.normalized = l.text;
          r.verdict = Verdict::Deliverable;
          r.reason = Reason::Accepted;
          r.has_smtp = true;
          r.code = 250;
          r.message = "ok " + l.text;
          pipeline::append_json(r, text, false);
        }
        out.push_back({l.line, std::move(text)});
      }
      w.complete(c, std::move(out));
    });
    w.start();
    return w;
  }
  static std::string addr(uint64_t i) { return "user" + std::to_string(i) + "@example.com"; }
  void submit(uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; ++i) {
      auto p = address::parse(addr(i));
      ASSERT_TRUE(p.ok());
      dispatch_->submit(1000 + i, i, addr(i), std::move(p.address));
    }
  }

  std::unique_ptr<cluster::testing::RedisServer> server_;
  std::vector<std::unique_ptr<RedisClient>> clients_;
  std::unique_ptr<ClusterDispatch> dispatch_;
  std::vector<std::unique_ptr<ChunkWorker>> workers_;
  std::map<uint64_t, int> delivered_;
  std::map<uint64_t, pipeline::Result> results_;
  std::vector<size_t> chunk_sizes_;
  size_t max_outstanding_ = 0;
};

TEST_P(ClusterDispatchTest, EveryAddressComesBackOnceUnderItsId) {
  server_ = start_server();
  ASSERT_TRUE(server_->ok());
  DispatchOptions o;
  o.chunk_lines = 10;
  o.window = 3;
  ClusterDispatch& d = dispatch(o);
  EXPECT_EQ(d.appetite(), 30u);
  node("n1");
  node("n2");
  submit(0, 95);
  ASSERT_TRUE(run_until([&] { return delivered_.size() == 95; }, 20s));
  for (uint64_t i = 0; i < 95; ++i) {
    ASSERT_EQ(delivered_[1000 + i], 1) << "address " << i;
    const auto& r = results_[1000 + i];
    EXPECT_EQ(r.verdict, Verdict::Deliverable);
    EXPECT_EQ(r.message, "ok " + addr(i));
  }
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_LE(max_outstanding_, 3u);  // the window: never more than 3 chunks in Redis
  EXPECT_EQ(d.stats().chunks, 10u);
  EXPECT_EQ(chunk_sizes_.size(), 10u);
}

TEST_P(ClusterDispatchTest, PartChunkGoesOutAfterTheQuietTime) {
  server_ = start_server();
  ASSERT_TRUE(server_->ok());
  DispatchOptions o;
  o.chunk_lines = 1000;
  o.flush_after = 30ms;
  dispatch(o);
  node("n1");
  submit(0, 3);
  ASSERT_TRUE(run_until([&] { return delivered_.size() == 3; }, 10s));
  ASSERT_EQ(chunk_sizes_.size(), 1u);
  EXPECT_EQ(chunk_sizes_[0], 3u);
}

TEST_P(ClusterDispatchTest, PauseTakesBackOnlyWhatWasNotSent) {
  server_ = start_server();
  ASSERT_TRUE(server_->ok());
  DispatchOptions o;
  o.chunk_lines = 10;
  o.window = 1;
  ClusterDispatch& d = dispatch(o);
  submit(0, 30);  // one chunk out (the window), two waiting here
  std::vector<uint64_t> back;
  EXPECT_EQ(d.withdraw(1000, 2000, back), 20u);
  ASSERT_EQ(back.size(), 20u);
  for (uint64_t id : back)
    EXPECT_GE(id, 1010u) << "the first chunk was sent: it is not taken back";
  node("n1");
  ASSERT_TRUE(run_until([&] { return delivered_.size() == 10; }, 10s));
  run_for(200ms);
  EXPECT_EQ(delivered_.size(), 10u);
  EXPECT_EQ(d.in_flight(), 0u);
}

TEST_P(ClusterDispatchTest, RecordThatDoesNotReadIsAnUnknownSaidAsSuch) {
  server_ = start_server();
  ASSERT_TRUE(server_->ok());
  DispatchOptions o;
  o.chunk_lines = 2;
  dispatch(o);
  node("n1");
  auto p = address::parse("bad@example.com");
  ASSERT_TRUE(p.ok());
  dispatch_->submit(7, 1, "bad@example.com", std::move(p.address));
  submit(1, 2);
  ASSERT_TRUE(run_until([&] { return delivered_.size() == 2; }, 10s));
  EXPECT_EQ(results_[7].verdict, Verdict::Unknown);
  EXPECT_EQ(results_[7].error, "cluster_record");
  EXPECT_EQ(results_[1001].verdict, Verdict::Deliverable);
  EXPECT_EQ(dispatch_->stats().unreadable, 1u);
}

TEST_P(ClusterDispatchTest, DroppedJobsChunksAreDiscardedByTheNodes) {
  server_ = start_server();
  ASSERT_TRUE(server_->ok());
  DispatchOptions o;
  o.chunk_lines = 5;
  o.window = 2;
  ClusterDispatch& d = dispatch(o);
  submit(0, 10);
  d.drop();
  ChunkWorker& w = node("n1");
  ASSERT_TRUE(eventually([&] { return w.stats().job_gone == 2; }, 10s));
  run_for(100ms);
  EXPECT_TRUE(delivered_.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, ClusterDispatchTest,
                         ::testing::Values(loop::Backend::Uring, loop::Backend::Uv),
                         cluster::testing::backend_name);

}  // namespace
}  // namespace mxp::app
