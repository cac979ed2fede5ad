// Command lines for the cluster's Redis functions and their replies (see functions.hpp).
#include "cluster/functions.hpp"

#include <cstdio>

#include "cluster/functions_lua.hpp"

namespace mxp::cluster::functions {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

std::string ms(Duration d) {
  // At least 1 ms: a zero or negative ttl is refused by the function.
  return std::to_string(std::max<int64_t>(1, duration_cast<milliseconds>(d).count()));
}

std::string unexpected_reply(std::string_view function, const Reply& r) {
  return std::string(function) + ": unexpected reply " + to_string(r);
}

// An array of `n` integers, or the reason it is not.
core::Expected<std::vector<int64_t>, std::string> integers(std::string_view function,
                                                           const Reply& r, size_t n) {
  if (r.is_error()) return core::unexpected(std::string(function) + ": " + r.str);
  if (r.type != Reply::Type::Array || (n != 0 && r.elements.size() != n)) {
    return core::unexpected(unexpected_reply(function, r));
  }
  std::vector<int64_t> out;
  for (const Reply& e : r.elements) {
    if (e.type != Reply::Type::Integer) return core::unexpected(unexpected_reply(function, r));
    out.push_back(e.integer);
  }
  return out;
}

}  // namespace

std::string_view library_code() {
  return generated::kFunctionsLua;
}

std::vector<std::string> load_command() {
  return {"FUNCTION", "LOAD", "REPLACE", std::string(library_code())};
}

std::vector<std::string> rate_lease(std::string_view key, int64_t want, double rate_per_second,
                                    int64_t burst) {
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%.9g", rate_per_second);
  return {"FCALL", "mxp1_rate_lease",    "1", std::string(key), std::to_string(want),
          rate,    std::to_string(burst)};
}

core::Expected<RateLease, std::string> parse_rate_lease(const Reply& reply) {
  auto v = integers("mxp1_rate_lease", reply, 2);
  if (!v) return core::unexpected(v.error());
  return RateLease{(*v)[0], microseconds((*v)[1])};
}

std::vector<std::string> slot_acquire(std::string_view key, std::string_view holder,
                                      int64_t capacity, Duration ttl) {
  return {"FCALL",          "mxp1_slot_acquire", "1",
          std::string(key), std::string(holder), std::to_string(capacity),
          ms(ttl)};
}

core::Expected<SlotGrant, std::string> parse_slot_acquire(const Reply& reply) {
  auto v = integers("mxp1_slot_acquire", reply, 3);
  if (!v) return core::unexpected(v.error());
  return SlotGrant{(*v)[0] == 1, (*v)[1], milliseconds((*v)[2])};
}

std::vector<std::string> slot_renew(std::string_view key, Duration ttl,
                                    std::span<const std::string> holders) {
  std::vector<std::string> argv = {"FCALL", "mxp1_slot_renew", "1", std::string(key), ms(ttl)};
  argv.insert(argv.end(), holders.begin(), holders.end());
  return argv;
}

core::Expected<std::vector<bool>, std::string> parse_slot_renew(const Reply& reply) {
  auto v = integers("mxp1_slot_renew", reply, 0);
  if (!v) return core::unexpected(v.error());
  std::vector<bool> out;
  for (int64_t x : *v)
    out.push_back(x == 1);
  return out;
}

std::vector<std::string> slot_release(std::string_view key, std::span<const std::string> holders) {
  std::vector<std::string> argv = {"FCALL", "mxp1_slot_release", "1", std::string(key)};
  argv.insert(argv.end(), holders.begin(), holders.end());
  return argv;
}

core::Expected<int64_t, std::string> parse_slot_release(const Reply& reply) {
  if (reply.is_error()) return core::unexpected("mxp1_slot_release: " + reply.str);
  if (reply.type != Reply::Type::Integer) {
    return core::unexpected(unexpected_reply("mxp1_slot_release", reply));
  }
  return reply.integer;
}

static std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", x);
  return buf;
}

std::vector<std::string> lease(const LeaseKeys& keys, const LeaseAsk& a) {
  std::vector<std::string> argv = {"FCALL",
                                   "mxp1_lease",
                                   "4",
                                   keys.connect,
                                   keys.rcpt,
                                   keys.backoff,
                                   keys.slots,
                                   std::to_string(a.want_connects),
                                   number(a.connect_rate),
                                   std::to_string(std::max<int64_t>(1, a.connect_burst)),
                                   std::to_string(a.want_rcpts),
                                   number(a.rcpt_rate),
                                   std::to_string(std::max<int64_t>(1, a.rcpt_burst)),
                                   number(a.own_factor),
                                   std::to_string(std::max<int64_t>(1, a.capacity)),
                                   std::to_string(std::max<int64_t>(1, a.window)),
                                   ms(a.ttl)};
  argv.insert(argv.end(), a.holders.begin(), a.holders.end());
  return argv;
}

core::Expected<Lease, std::string> parse_lease(const Reply& reply) {
  auto v = integers("mxp1_lease", reply, 7);
  if (!v) return core::unexpected(v.error());
  const auto& x = *v;
  return Lease{x[0],       x[2], microseconds(x[1]), microseconds(x[3]),
               x[4] / 1e6, x[5], milliseconds(x[6])};
}

std::vector<std::string> backoff(std::string_view key, double decrease, double min_factor,
                                 double recover_per_second, Duration holdoff) {
  return {"FCALL",
          "mxp1_backoff",
          "1",
          std::string(key),
          number(decrease),
          number(min_factor),
          number(recover_per_second),
          std::to_string(std::max<int64_t>(0, duration_cast<milliseconds>(holdoff).count()))};
}

core::Expected<Backoff, std::string> parse_backoff(const Reply& reply) {
  auto v = integers("mxp1_backoff", reply, 2);
  if (!v) return core::unexpected(v.error());
  return Backoff{(*v)[0] == 1, (*v)[1] / 1e6};
}

std::vector<std::string> group_use(std::string_view prefix, std::span<const std::string> groups) {
  std::vector<std::string> argv = {"FCALL_RO", "mxp1_group_use", "0", std::string(prefix)};
  argv.insert(argv.end(), groups.begin(), groups.end());
  return argv;
}

core::Expected<std::vector<GroupUse>, std::string> parse_group_use(const Reply& reply,
                                                                   size_t groups) {
  if (reply.is_error()) return core::unexpected("mxp1_group_use: " + reply.str);
  if (reply.type != Reply::Type::Array || reply.elements.size() != groups)
    return core::unexpected(unexpected_reply("mxp1_group_use", reply));
  std::vector<GroupUse> out;
  for (const Reply& e : reply.elements) {
    auto v = integers("mxp1_group_use", e, 4);
    if (!v) return core::unexpected(v.error());
    const auto& x = *v;
    out.push_back({x[0], microseconds(x[1]), microseconds(x[2]), x[3] / 1e6});
  }
  return out;
}

std::vector<std::string> chunk_counts(std::string_view stream, std::string_view group) {
  return {"FCALL_RO", "mxp1_chunk_counts", "1", std::string(stream), std::string(group)};
}

core::Expected<ChunkCounts, std::string> parse_chunk_counts(const Reply& reply) {
  auto v = integers("mxp1_chunk_counts", reply, 3);
  if (!v) return core::unexpected(v.error());
  return ChunkCounts{(*v)[0], (*v)[1], (*v)[2]};
}

}  // namespace mxp::cluster::functions
