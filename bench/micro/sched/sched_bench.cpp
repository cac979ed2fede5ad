// Cost per scheduling decision (next_ready + the outcome + session end + one enqueue that keeps
// the queue size constant) with 1k, 10k and 100k queued addresses spread over 10,000 MX groups
// (one domain each). Flat numbers across the three sizes mean no scan grows with the queue.
//   Open:       no limit is hit; deficit round-robin and queue operations only.
//   Throttled:  every group may open one session per second; groups park on their buckets and
//               come back through the timer wheel as a simulated clock moves.
//   Greylisted: every first try is greylisted: a pinned retry through the timer wheel.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "sched/scheduler.hpp"

namespace {

using namespace std::chrono_literals;
using namespace mxp;
using namespace mxp::sched;

constexpr int kGroups = 10'000;

std::shared_ptr<const Policy> policy(const std::string& extra) {
  std::string text = R"(
[global]
max_sessions = 1000000
builtin_providers = false
[defaults]
per_domain = { sessions = 1000000, connect_rate = 0, rcpt_rate = 0 }
per_source = { sessions = 1000000, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = 1, rejections = 1 }
retry = { schedule = ["30s"], attempts = 3 }
backoff = { initial_sessions = 1000000 }
)" + extra;
  auto p = parse_policy(text, "bench");
  if (!p) std::abort();
  return std::make_shared<const Policy>(std::move(*p));
}

struct World {
  Scheduler s;
  std::vector<DomainId> domains;
  TimePoint now{std::chrono::hours(1)};
  uint64_t key = 0;
  World(std::shared_ptr<const Policy> p, int64_t queued)
      : s(std::move(p), {{"192.0.2.1", {}}, {"192.0.2.2", {}}}, TimePoint{std::chrono::hours(1)}) {
    for (int g = 0; g < kGroups; ++g) {
      const std::string name = "d" + std::to_string(g) + ".test";
      const DomainId d = s.domain(name);
      s.set_domain_group(d, s.group_for_mx("mx." + name), now);
      domains.push_back(d);
    }
    for (int64_t i = 0; i < queued; ++i)
      s.enqueue(key++, domains[i % kGroups], now);
  }
};

verdict::Classification accepted() {
  verdict::Classification c;
  c.verdict = Verdict::Deliverable;
  c.reason = Reason::Accepted;
  return c;
}

void BM_DecisionOpen(benchmark::State& state) {
  World w(policy("per_mx = { sessions = 1000000, connect_rate = 0, rcpt_rate = 0 }\n"),
          state.range(0));
  Grant g;
  const auto ok = accepted();
  for (auto _ : state) {
    if (!w.s.next_ready(w.now, g)) state.SkipWithError("no grant");
    for (const auto& it : g.items) {
      w.s.on_outcome(g.session, it.id, ok, w.now);
      w.s.enqueue(w.key++, g.domain, w.now);
    }
    w.s.on_session_ended(g.session, w.now);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DecisionThrottled(benchmark::State& state) {
  World w(policy("per_mx = { sessions = 1000000, connect_rate = 1, connect_burst = 1, "
                 "rcpt_rate = 0 }\n"),
          state.range(0));
  Grant g;
  const auto ok = accepted();
  int64_t decisions = 0;
  for (auto _ : state) {
    w.now += 50us;  // 20,000 clock steps per simulated second against 10,000 groups at 1/s
    while (w.s.next_ready(w.now, g)) {
      ++decisions;
      for (const auto& it : g.items) {
        w.s.on_outcome(g.session, it.id, ok, w.now);
        w.s.enqueue(w.key++, g.domain, w.now);
      }
      w.s.on_session_ended(g.session, w.now);
    }
  }
  state.counters["decisions"] = static_cast<double>(decisions);
  state.counters["per_decision"] = benchmark::Counter(
      static_cast<double>(decisions), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_DecisionGreylisted(benchmark::State& state) {
  World w(policy("per_mx = { sessions = 1000000, connect_rate = 0, rcpt_rate = 0 }\n"),
          state.range(0));
  Grant g;
  const auto ok = accepted();
  verdict::Classification grey;
  grey.verdict = Verdict::Unknown;
  grey.reason = Reason::Greylisted;
  grey.retry_later = true;
  int64_t decisions = 0;
  for (auto _ : state) {
    w.now += 1ms;
    if (!w.s.next_ready(w.now, g)) continue;
    ++decisions;
    for (const auto& it : g.items) {
      if (it.tries == 0) {
        w.s.on_outcome(g.session, it.id, grey, w.now);  // back in 30 s, same source
      } else {
        w.s.on_outcome(g.session, it.id, ok, w.now);
        w.s.enqueue(w.key++, g.domain, w.now);
      }
    }
    w.s.on_session_ended(g.session, w.now);
  }
  state.counters["per_decision"] = benchmark::Counter(
      static_cast<double>(decisions), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// One add and, in steady state, one expiry per iteration: timers live U(1, 2N) ms and the clock
// moves 1 ms per iteration, so about N are pending at any time.
void BM_TimerWheelAddExpire(benchmark::State& state) {
  TimerWheel wheel(TimePoint{});
  TimePoint now{};
  const uint64_t span = 2 * static_cast<uint64_t>(state.range(0));
  uint64_t n = 0, fired = 0;
  for (uint64_t i = 0; i < span / 2; ++i)  // start near the steady state
    wheel.add(now + std::chrono::milliseconds(1 + (i * 7919) % span), n++);
  for (auto _ : state) {
    now += 1ms;
    wheel.add(now + std::chrono::milliseconds(1 + (n * 7919) % span), n);
    ++n;
    wheel.advance(now, [&](uint64_t) { ++fired; });
  }
  benchmark::DoNotOptimize(fired);
  state.counters["pending"] = static_cast<double>(wheel.size());
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_DecisionOpen)->Arg(1'000)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_DecisionThrottled)->Arg(1'000)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_DecisionGreylisted)->Arg(1'000)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_TimerWheelAddExpire)->Arg(1'000)->Arg(10'000)->Arg(100'000);

}  // namespace
