// Unit tests of the loop's plain parts: status names and errno mapping, Endpoint parsing and
// formatting, and the timer heap against a reference model (random adds, cancels and pops).
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <random>
#include <set>

#include "loop/endpoint.hpp"
#include "loop/status.hpp"
#include "loop/timer_heap.hpp"

namespace mxp::loop {
namespace {

TEST(Status, NamesAreUniqueAndNonEmpty) {
  std::set<std::string_view> names;
  for (int i = 0; i < kStatusCount; ++i) {
    const auto name = to_string(static_cast<Status>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(to_string(Status::ConnectTimeout), "connect_timeout");
}

TEST(Status, MapsErrno) {
  EXPECT_EQ(status_from_errno(0), Status::Ok);
  EXPECT_EQ(status_from_errno(ECONNREFUSED), Status::ConnectionRefused);
  EXPECT_EQ(status_from_errno(ECONNRESET), Status::ConnectionReset);
  EXPECT_EQ(status_from_errno(EADDRNOTAVAIL), Status::AddressNotAvailable);
  EXPECT_EQ(status_from_errno(EMFILE), Status::TooManyOpenFiles);
  EXPECT_EQ(status_from_errno(EHOSTUNREACH), Status::HostUnreachable);
  EXPECT_EQ(status_from_errno(EIO), Status::SystemError);
}

TEST(Endpoint, ParsesAndFormatsBothFamilies) {
  const auto v4 = Endpoint::parse("192.0.2.7", 25);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 25);
  EXPECT_EQ(v4->to_string(), "192.0.2.7:25");
  const auto v6 = Endpoint::parse("2001:db8::1", 2525);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->to_string(), "[2001:db8::1]:2525");
  EXPECT_EQ(v6->len(), sizeof(sockaddr_in6));
  EXPECT_FALSE(Endpoint::parse("mx.example", 25));
  EXPECT_FALSE(Endpoint::parse("", 25));
  EXPECT_FALSE(Endpoint::parse("1.2.3.4.5", 25));
  EXPECT_FALSE(Endpoint{}.valid());
}

TEST(Endpoint, ParsesHostPort) {
  EXPECT_EQ(Endpoint::parse_host_port("127.0.0.1:5353", 53)->to_string(), "127.0.0.1:5353");
  EXPECT_EQ(Endpoint::parse_host_port("127.0.0.1", 53)->to_string(), "127.0.0.1:53");
  EXPECT_EQ(Endpoint::parse_host_port("[::1]:5353", 53)->to_string(), "[::1]:5353");
  EXPECT_EQ(Endpoint::parse_host_port("[::1]", 53)->to_string(), "[::1]:53");
  EXPECT_EQ(Endpoint::parse_host_port("::1", 53)->to_string(), "[::1]:53");
  EXPECT_FALSE(Endpoint::parse_host_port("127.0.0.1:", 53));
  EXPECT_FALSE(Endpoint::parse_host_port("127.0.0.1:65536", 53));
  EXPECT_FALSE(Endpoint::parse_host_port("127.0.0.1:5x", 53));
  EXPECT_FALSE(Endpoint::parse_host_port("[::1]x", 53));
  EXPECT_FALSE(Endpoint::parse_host_port("[::1", 53));
  EXPECT_TRUE(*Endpoint::parse("::1", 1) == *Endpoint::parse_host_port("[::1]:1", 0));
  EXPECT_FALSE(*Endpoint::parse("::1", 1) == *Endpoint::parse("::1", 2));
}

struct Counter final : TimerHandler {
  void on_timer(TimerId, uint64_t) override {}
};

// Random operations checked against a std::multimap keyed by (deadline, insertion order).
TEST(TimerHeap, MatchesAReferenceModel) {
  TimerHeap heap;
  Counter handler;
  std::map<std::pair<TimePoint, uint64_t>, std::pair<TimerId, uint64_t>> model;
  std::vector<TimerId> live;
  std::mt19937 rng(1);
  const TimePoint t0{};
  uint64_t seq = 0;
  TimePoint now = t0;
  for (int step = 0; step < 20000; ++step) {
    const unsigned op = rng() % 10;
    if (op < 5) {
      const TimePoint d = now + std::chrono::milliseconds(rng() % 50);
      const uint64_t cookie = seq;
      const TimerId id = heap.add(d, &handler, cookie);
      model.emplace(std::pair{d, seq++}, std::pair{id, cookie});
      live.push_back(id);
    } else if (op < 7 && !live.empty()) {
      const size_t pick = rng() % live.size();
      const TimerId id = live[pick];
      live.erase(live.begin() + static_cast<long>(pick));
      bool in_model = false;
      for (auto it = model.begin(); it != model.end(); ++it) {
        if (it->second.first == id) {
          model.erase(it);
          in_model = true;
          break;
        }
      }
      EXPECT_EQ(heap.cancel(id), in_model);
      EXPECT_FALSE(heap.cancel(id));
    } else {
      now += std::chrono::milliseconds(rng() % 10);
      TimerHeap::Fired f;
      while (heap.pop_due(now, heap.next_seq(), f)) {
        ASSERT_FALSE(model.empty());
        const auto first = model.begin();
        EXPECT_LE(first->first.first, now);
        EXPECT_EQ(f.id, first->second.first);
        EXPECT_EQ(f.cookie, first->second.second);
        EXPECT_EQ(f.handler, &handler);
        model.erase(first);
      }
      if (!model.empty()) {
        EXPECT_GT(model.begin()->first.first, now);
      }
    }
    ASSERT_EQ(heap.size(), model.size());
    if (!model.empty()) {
      EXPECT_EQ(heap.earliest(), model.begin()->first.first);
    } else {
      EXPECT_FALSE(heap.earliest());
    }
  }
}

TEST(TimerHeap, SequenceLimitDefersTimersAddedDuringAPass) {
  TimerHeap heap;
  Counter handler;
  const TimePoint t{};
  heap.add(t, &handler, 1);
  const uint64_t limit = heap.next_seq();
  heap.add(t, &handler, 2);  // "added by a callback" during the pass
  TimerHeap::Fired f;
  ASSERT_TRUE(heap.pop_due(t, limit, f));
  EXPECT_EQ(f.cookie, 1u);
  EXPECT_FALSE(heap.pop_due(t, limit, f));
  ASSERT_TRUE(heap.pop_due(t, heap.next_seq(), f));
  EXPECT_EQ(f.cookie, 2u);
}

}  // namespace
}  // namespace mxp::loop
