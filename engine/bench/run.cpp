#include "bench/run.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace mxp::bench {
namespace {

std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v) || !(v > 0)) return std::nullopt;
  return v;
}

}  // namespace

bool is_private(const core::Endpoint& e) {
  if (e.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(e.sa());
    const uint32_t a = ntohl(in->sin_addr.s_addr);
    return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) ||
           (a >> 16) == (192u << 8 | 168);
  }
  if (e.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(e.sa());
    const uint8_t* b = in6->sin6_addr.s6_addr;
    static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (std::memcmp(b, kLoopback, 16) == 0) return true;
    return (b[0] & 0xfe) == 0xfc;
  }
  return false;
}

std::optional<std::vector<double>> parse_rates(const std::string& list) {
  std::vector<double> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto v = number(item);
    if (!v) return std::nullopt;
    out.push_back(*v);
  }
  if (out.empty() || (!list.empty() && list.back() == ',')) return std::nullopt;
  return out;
}

std::optional<std::vector<double>> parse_ramp(const std::string& spec) {
  const auto a = spec.find(':');
  const auto b = a == std::string::npos ? a : spec.find(':', a + 1);
  if (b == std::string::npos) return std::nullopt;
  auto from = number(spec.substr(0, a));
  auto to = number(spec.substr(a + 1, b - a - 1));
  const std::string step = spec.substr(b + 1);
  if (!from || !to || *to < *from || step.size() < 2) return std::nullopt;
  auto by = number(step.substr(1));
  if (!by || (step[0] != 'x' && step[0] != '+') || (step[0] == 'x' && *by <= 1))
    return std::nullopt;
  std::vector<double> out;
  for (double r = *from; r < *to * (1 - 1e-9); r = step[0] == 'x' ? r * *by : r + *by) {
    out.push_back(r);
    if (out.size() > 1000) return std::nullopt;  // a ramp of a thousand steps is a typo
  }
  out.push_back(*to);
  return out;
}

OpenLoop::OpenLoop(double rate, uint64_t count, TimePoint start, size_t max_sessions)
    : rate_(rate), count_(count), start_(start), max_(max_sessions ? max_sessions : 1) {}

TimePoint OpenLoop::intended(uint64_t i) const {
  return start_ + std::chrono::duration_cast<Duration>(
                      std::chrono::duration<double>(static_cast<double>(i) / rate_));
}

std::optional<TimePoint> OpenLoop::take(TimePoint now) {
  if (next_ == count_ || active_ >= max_) return std::nullopt;
  const TimePoint t = intended(next_);
  if (t > now) return std::nullopt;
  ++next_;
  ++active_;
  return t;
}

std::optional<TimePoint> OpenLoop::next_due() const {
  if (next_ == count_ || active_ >= max_) return std::nullopt;
  return intended(next_);
}

static uint64_t us_between(TimePoint a, TimePoint b) {
  if (b <= a) return 0;
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

static ReplyClass class_of(int code) {
  if (code == 421) return ReplyClass::C421;
  switch (code / 100) {
    case 2:
      return ReplyClass::C2xx;
    case 3:
      return ReplyClass::C3xx;
    case 4:
      return ReplyClass::C4xx;
    default:
      return ReplyClass::C5xx;
  }
}

void StepStats::add(const SessionOutcome& s) {
  ++started;
  behind.record(us_between(s.intended, s.started));
  failures[static_cast<int>(s.failure)]++;
  if (s.ok)
    ++completed;
  else
    ++failed;
  rcpts += static_cast<uint64_t>(s.rcpt_replies);
  constexpr int kConnect = static_cast<int>(Stage::Connect);
  if (s.connected) {
    from_start[kConnect].record(us_between(s.intended, *s.connected));
    from_send[kConnect].record(us_between(s.started, *s.connected));
  }
  for (const Measure& m : s.measures) {
    const int i = static_cast<int>(m.stage);
    replies[i][static_cast<int>(class_of(m.code))]++;
    from_start[i].record(us_between(s.intended, m.received));
    from_send[i].record(us_between(m.sent, m.received));
  }
  if (s.ok) {
    constexpr int kSession = static_cast<int>(Stage::Session);
    from_start[kSession].record(us_between(s.intended, s.ended));
    from_send[kSession].record(us_between(s.started, s.ended));
    ends.push_back(s.ended);
  }
}

double StepStats::achieved() const {
  const size_t n = ends.size();
  if (n == 0) return 0;
  std::vector<TimePoint> e = ends;
  std::sort(e.begin(), e.end());
  const double span = std::chrono::duration<double>(e.back() - e.front()).count();
  // Few completions: over the step's length, or their span when longer.
  if (n < 40) return static_cast<double>(n) / std::max({seconds, span, 1e-9});
  // The middle 95% of the completions: a server that keeps up completes them at the offered
  // rate whatever its latency, one that falls behind at its own rate, and a few slow sessions
  // (the tail, which the percentiles report) do not stretch the span.
  const size_t lo = n / 40, hi = n - 1 - n / 40;
  const double mid = std::chrono::duration<double>(e[hi] - e[lo]).count();
  if (mid <= 0) return static_cast<double>(n) / std::max(seconds, 1e-9);
  return static_cast<double>(hi - lo) / mid;
}

double StepStats::achieved_rcpts() const {
  return completed ? achieved() * double(rcpts) / double(started) : 0;
}

Knee find_knee(const std::vector<StepStats>& steps) {
  Knee k;
  if (steps.empty()) return k;
  const double p99_first =
      static_cast<double>(steps[0].from_start[static_cast<int>(Stage::Session)].percentile(0.99));
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepStats& s = steps[i];
    const double p99 =
        static_cast<double>(s.from_start[static_cast<int>(Stage::Session)].percentile(0.99));
    std::string why;
    auto add = [&](const char* c) { why += (why.empty() ? "" : "; ") + std::string(c); };
    if (s.achieved() < 0.95 * s.offered) add("achieved < 95% of offered");
    // 3x, and 1 ms more: sub-millisecond latencies on a loopback sink triple from noise alone.
    if (i > 0 && p99 > 3 * p99_first && p99 > p99_first + 1000)
      add("session p99 > 3x the first step's");
    if (s.error_share() > 0.01) add("errors > 1% of sessions");
    if (why.empty()) continue;
    k.found = true;
    k.step = i;
    k.criterion = why;
    k.rate = s.offered;
    if (i > 0) k.last_good_rate = steps[i - 1].offered;
    return k;
  }
  return k;
}

bool fell_over(const StepStats& s) {
  return s.achieved() < 0.5 * s.offered || (s.started > 0 && s.failed * 2 >= s.started);
}

}  // namespace mxp::bench
