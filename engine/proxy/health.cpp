// Proxy health decisions (see health.hpp).
#include "proxy/health.hpp"

#include <algorithm>

namespace mxp::proxy {

Health::Health(size_t proxies, HealthSettings settings) : proxies_(proxies), settings_(settings) {
  if (settings_.first <= Clock::duration::zero()) settings_.first = std::chrono::milliseconds(1);
  if (settings_.max < settings_.first) settings_.max = settings_.first;
}

size_t Health::up_count() const {
  return static_cast<size_t>(
      std::count_if(proxies_.begin(), proxies_.end(), [](const Proxy& p) { return p.up; }));
}

Health::Change Health::go_down(Proxy& p, TimePoint now, std::string why) {
  p.last_error = std::move(why);
  const bool was_up = p.up;
  if (was_up) {
    p.up = false;
    p.backoff = settings_.first;
  } else {
    p.backoff = std::min(settings_.max, p.backoff * 2);
  }
  p.next_check = now + p.backoff;
  return was_up ? Change::WentDown : Change::None;
}

Health::Change Health::on_failure(size_t i, TimePoint now, std::string why) {
  Proxy& p = proxies_[i];
  ++p.failures;
  if (!p.up) {  // already down (other sessions of the same death): keep the schedule
    p.last_error = std::move(why);
    return Change::None;
  }
  return go_down(p, now, std::move(why));
}

void Health::want_check(size_t i) {
  proxies_[i].wanted = true;
}

void Health::due(TimePoint now, std::vector<size_t>& out) {
  for (size_t i = 0; i < proxies_.size(); ++i) {
    Proxy& p = proxies_[i];
    if (p.checking) continue;
    if (p.wanted || (!p.up && p.next_check <= now)) {
      p.checking = true;
      p.wanted = false;
      ++p.checks;
      out.push_back(i);
    }
  }
}

Health::Change Health::on_check(size_t i, bool ok, TimePoint now, std::string why) {
  Proxy& p = proxies_[i];
  p.checking = false;
  if (ok) {
    const bool was_down = !p.up;
    p.up = true;
    p.backoff = {};
    return was_down ? Change::CameUp : Change::None;
  }
  ++p.failures;
  return go_down(p, now, std::move(why));
}

std::optional<TimePoint> Health::next_deadline() const {
  std::optional<TimePoint> at;
  for (const Proxy& p : proxies_) {
    if (p.checking) continue;
    if (p.wanted) return TimePoint::min();
    if (!p.up && (!at || p.next_check < *at)) at = p.next_check;
  }
  return at;
}

}  // namespace mxp::proxy
