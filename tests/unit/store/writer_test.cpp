// store::Writer: work runs on its own thread in the order posted, tickets come back through the
// eventfd in that order with their status, the owner's connection reads what the writer
// committed, detached failures are logged, and destruction runs what was still queued.
#include "store/writer.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "temp_db.hpp"

namespace mxp::store {
namespace {

using test::TempDb;

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

std::vector<RowIn> rows(uint64_t first, uint64_t n) {
  std::vector<RowIn> out;
  for (uint64_t i = first; i < first + n; ++i)
    out.push_back({i, "u" + std::to_string(i) + "@x.test", "u" + std::to_string(i) + "@x.test"});
  return out;
}

TEST(Writer, RunsInOrderOffTheCallersThreadAndReportsThroughTheEventfd) {
  TempDb tmp;
  ASSERT_TRUE(tmp.ok());
  auto reads = SqliteStore::open(tmp.path());
  ASSERT_TRUE(reads);
  auto job = (*reads)->create_job("in", "{}");
  ASSERT_TRUE(job);
  auto w = Writer::open(tmp.path(), nullptr, "test");
  ASSERT_TRUE(w) << w.error().message;
  Writer& wr = **w;
  EXPECT_FALSE(readable(wr.event_fd(), 0));

  const auto caller = std::this_thread::get_id();
  std::vector<std::thread::id> ran_on;
  std::vector<int> order;
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 5; ++i)
    tickets.push_back(wr.post([&, i, j = *job](SqliteStore& s) {
      ran_on.push_back(std::this_thread::get_id());
      order.push_back(i);
      return s.add_rows(j, rows(uint64_t(i) * 100 + 1, 100));
    }));
  EXPECT_EQ(tickets, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(wr.outstanding(), 5u);

  std::vector<Writer::Done> done;
  while (done.size() < 5) {
    ASSERT_TRUE(readable(wr.event_fd(), 5000)) << "no completion within 5 s";
    for (auto& d : wr.reap())
      done.push_back(std::move(d));
  }
  EXPECT_EQ(wr.outstanding(), 0u);
  EXPECT_FALSE(readable(wr.event_fd(), 0)) << "reap() clears the eventfd";
  for (size_t i = 0; i < done.size(); ++i) {
    EXPECT_EQ(done[i].ticket, i + 1);
    EXPECT_TRUE(done[i].status.ok());
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (auto id : ran_on)
    EXPECT_NE(id, caller);
  // The owner's own connection sees the writer's commits.
  auto counts = (*reads)->count_by_state(*job);
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->pending, 500u);
}

TEST(Writer, AFailureComesBackWithItsTicketAndDetachedOnesAreLogged) {
  TempDb tmp;
  ASSERT_TRUE(tmp.ok());
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* log = open_memstream(&buf, &len);
  ASSERT_NE(log, nullptr);
  {
    auto w = Writer::open(tmp.path(), log, "mxprobe test: cache");
    ASSERT_TRUE(w);
    // A row numbered 0: the store refuses it.
    const uint64_t t = (*w)->post([](SqliteStore& s) { return s.add_rows(1, rows(0, 1)); });
    (*w)->post_detached([](SqliteStore&) {
      return Status(core::unexpected(Error{0, "disk on fire"}));
    });
    (*w)->post_detached([](SqliteStore&) { return Status(); });
    (*w)->drain();
    auto done = (*w)->reap();
    ASSERT_EQ(done.size(), 1u) << "detached work has no ticket";
    EXPECT_EQ(done[0].ticket, t);
    EXPECT_FALSE(done[0].status.ok());
  }
  std::fclose(log);
  std::string text(buf, len);
  std::free(buf);
  EXPECT_EQ(text, "mxprobe test: cache: disk on fire\n");
}

TEST(Writer, DestructionRunsWhatIsStillQueued) {
  TempDb tmp;
  ASSERT_TRUE(tmp.ok());
  auto reads = SqliteStore::open(tmp.path());
  ASSERT_TRUE(reads);
  auto job = (*reads)->create_job("in", "{}");
  ASSERT_TRUE(job);
  {
    auto w = Writer::open(tmp.path(), nullptr, "test");
    ASSERT_TRUE(w);
    for (uint64_t i = 0; i < 20; ++i)
      (*w)->post_detached(
          [j = *job, i](SqliteStore& s) { return s.add_rows(j, rows(i * 50 + 1, 50)); });
  }
  auto counts = (*reads)->count_by_state(*job);
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->pending, 1000u);
}

}  // namespace
}  // namespace mxp::store
