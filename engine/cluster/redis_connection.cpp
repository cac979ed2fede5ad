// The sans-I/O Redis connection (see redis_connection.hpp): hiredis' reader and formatter, the
// handshake, the waiting and in-flight queues, timeouts.
#include "cluster/redis_connection.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "core/strings.hpp"

namespace mxp::cluster {
namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::String;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::Status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::Error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::Integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::Array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(convert(r->element[i]));
      break;
    default:  // REDIS_REPLY_NIL (a nil bulk string or a nil array)
      out.type = Reply::Type::Nil;
      break;
  }
  return out;
}

// "250 ms", "5 s", "1.5 s": for messages.
std::string describe(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", static_cast<double>(ms) / 1000.0);
  return buf;
}

// The command's name for messages: "GET", "FCALL mxprobe_rate_lease".
std::string name_of(std::span<const std::string_view> argv) {
  std::string name(argv[0].substr(0, 32));
  for (char& c : name)
    c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  if ((name == "FCALL" || name == "FCALL_RO" || name == "EVALSHA") && argv.size() > 1) {
    name += " ";
    name += argv[1].substr(0, 64);
  }
  return name;
}

// Refusals that a later connection may not get: Redis loading its data set after a restart,
// busy with a script, a replica without its master, or full of clients. Waiting commands stay
// queued through them; any other refusal (a wrong password, a missing ACL right, a db number
// past `databases`) fails them at once rather than letting each wait out its timeout.
bool transient(std::string_view error) {
  for (std::string_view prefix : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN"}) {
    if (error.substr(0, prefix.size()) == prefix) return true;
  }
  return core::icontains(error, "max number of clients");
}

}  // namespace

std::string to_string(const Reply& r) {
  auto cut = [](const std::string& s) {
    return s.size() <= 80 ? s : s.substr(0, 80) + "...(" + std::to_string(s.size()) + " bytes)";
  };
  switch (r.type) {
    case Reply::Type::String:
      return "\"" + cut(r.str) + "\"";
    case Reply::Type::Status:
      return cut(r.str);
    case Reply::Type::Error:
      return "(error) " + cut(r.str);
    case Reply::Type::Integer:
      return "(integer) " + std::to_string(r.integer);
    case Reply::Type::Nil:
      return "(nil)";
    case Reply::Type::Array: {
      std::string s = "[";
      for (size_t i = 0; i < r.elements.size(); ++i) {
        if (i == 8) {
          s += ", ...(" + std::to_string(r.elements.size()) + " elements)";
          break;
        }
        s += (i ? ", " : "") + to_string(r.elements[i]);
      }
      return s + "]";
    }
  }
  return "?";
}

std::string_view to_string(Failure f) {
  switch (f) {
    case Failure::Timeout:
      return "timeout";
    case Failure::ConnectionLost:
      return "connection_lost";
    case Failure::ProtocolError:
      return "protocol_error";
    case Failure::HandshakeFailed:
      return "handshake_failed";
    case Failure::QueueFull:
      return "queue_full";
    case Failure::Closed:
      return "closed";
    case Failure::BadCommand:
      return "bad_command";
  }
  return "?";
}

RedisConnection::RedisConnection(ConnectionOptions options) : opts_(std::move(options)) {
  reset_reader();
}

RedisConnection::~RedisConnection() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void RedisConnection::reset_reader() {
  if (reader_ != nullptr) redisReaderFree(reader_);
  reader_ = redisReaderCreate();
}

bool RedisConnection::format(std::span<const std::string_view> argv, std::string& out) {
  std::vector<const char*> ptrs(argv.size());
  std::vector<size_t> lens(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    ptrs[i] = argv[i].data();
    lens[i] = argv[i].size();
  }
  char* cmd = nullptr;
  const int n =
      redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  if (n < 0 || cmd == nullptr) return false;
  out.append(cmd, static_cast<size_t>(n));
  redisFreeCommand(cmd);
  return true;
}

void RedisConnection::command(const std::vector<std::string>& argv, Done done, TimePoint now,
                              std::optional<Duration> timeout) {
  std::vector<std::string_view> views(argv.begin(), argv.end());
  command(std::span<const std::string_view>(views), std::move(done), now, timeout);
}

void RedisConnection::command(std::span<const std::string_view> argv, Done done, TimePoint now,
                              std::optional<Duration> timeout) {
  ++stats_.issued;
  auto refuse = [&](Failure f, std::string message) {
    ++stats_.failed;
    if (done) done(core::unexpected(CommandError{f, std::move(message)}));
  };
  if (shut_down_) return refuse(Failure::Closed, "the Redis client is closed");
  if (argv.empty()) return refuse(Failure::BadCommand, "a command needs at least its name");
  if (waiting_.size() + inflight_.size() >= opts_.max_queued) {
    std::string why =
        std::to_string(opts_.max_queued) + " Redis commands already waiting or in flight";
    if (state_ != State::Ready && !down_reason_.empty()) why += " (down: " + down_reason_ + ")";
    return refuse(Failure::QueueFull, std::move(why));
  }
  Pending p;
  p.kind = Kind::User;
  p.done = std::move(done);
  p.name = name_of(argv);
  p.issued = p.sent = now;
  p.deadline = now + timeout.value_or(opts_.command_timeout);
  enqueue(std::move(p), argv, now);
}

void RedisConnection::enqueue(Pending p, std::span<const std::string_view> argv, TimePoint now) {
  // Straight out when ready and nobody waits ahead (order is the contract); else it waits.
  const bool now_out =
      state_ == State::Ready || (p.kind != Kind::User && state_ == State::Handshake);
  const bool direct = now_out && (p.kind != Kind::User || waiting_.empty());
  std::string& target = direct ? out_ : p.wire;
  if (!format(argv, target)) {
    ++stats_.failed;
    if (p.done)
      p.done(core::unexpected(CommandError{Failure::BadCommand, "cannot format " + p.name}));
    return;
  }
  p.deadline_it = deadlines_.insert(p.deadline);
  if (direct) {
    p.sent = now;
    inflight_.push_back(std::move(p));
  } else {
    waiting_.push_back(std::move(p));
  }
}

void RedisConnection::on_connected(TimePoint now) {
  if (shut_down_) return;
  reset_reader();
  out_.clear();
  out_off_ = 0;
  want_close_ = false;
  state_ = State::Handshake;
  start_handshake(now);
}

void RedisConnection::start_handshake(TimePoint now) {
  setup_sent_ = 0;
  auto internal = [&](Kind kind, std::span<const std::string_view> argv) {
    Pending p;
    p.kind = kind;
    p.name = name_of(argv);
    p.issued = p.sent = now;
    p.deadline = now + opts_.command_timeout;
    enqueue(std::move(p), argv, now);
    ++setup_sent_;
  };
  if (!opts_.password.empty()) {
    if (opts_.user.empty()) {
      const std::string_view a[] = {"AUTH", opts_.password};
      internal(Kind::Auth, a);
    } else {
      const std::string_view a[] = {"AUTH", opts_.user, opts_.password};
      internal(Kind::Auth, a);
    }
  }
  if (opts_.db != 0) {
    const std::string db = std::to_string(opts_.db);
    const std::string_view a[] = {"SELECT", db};
    internal(Kind::Select, a);
  }
  if (!opts_.client_name.empty()) {
    const std::string_view a[] = {"CLIENT", "SETNAME", opts_.client_name};
    internal(Kind::SetName, a);
  }
  for (const auto& cmd : opts_.setup) {
    if (cmd.empty()) continue;
    std::vector<std::string_view> a(cmd.begin(), cmd.end());
    internal(Kind::Setup, a);
  }
  if (setup_sent_ == 0) become_ready(now);
}

void RedisConnection::become_ready(TimePoint now) {
  state_ = State::Ready;
  ++stats_.handshakes;
  // Everything that waited goes out now, pipelined, in issue order.
  while (!waiting_.empty()) {
    Pending& p = waiting_.front();
    out_ += p.wire;
    p.wire = std::string();
    p.sent = now;
    inflight_.push_back(std::move(p));
    waiting_.pop_front();
  }
}

void RedisConnection::on_bytes(std::string_view bytes, TimePoint now) {
  if (state_ == State::Down || bytes.empty()) return;  // after we gave up: ignored
  stats_.bytes_in += bytes.size();
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) {
    give_up(std::string("protocol error: ") + reader_->errstr, Failure::ProtocolError);
    return;
  }
  const uint64_t epoch = epoch_;
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
      give_up(std::string("protocol error: ") + reader_->errstr, Failure::ProtocolError);
      return;
    }
    if (raw == nullptr) return;  // the rest of a reply is still to come
    Reply reply = convert(static_cast<const redisReply*>(raw));
    freeReplyObject(raw);
    if (inflight_.empty()) {
      give_up("protocol error: a reply no command was waiting for: " + to_string(reply),
              Failure::ProtocolError);
      return;
    }
    Pending p = std::move(inflight_.front());
    inflight_.pop_front();
    deadlines_.erase(p.deadline_it);
    if (p.kind != Kind::User) {
      handshake_reply(p, std::move(reply), now);
    } else {
      const Duration rtt = now - p.sent;
      ++stats_.rtt_count;
      stats_.rtt_total += rtt;
      if (rtt > stats_.rtt_max) stats_.rtt_max = rtt;
      if (on_rtt_) on_rtt_(rtt);
      finish(p, Result(std::move(reply)));
    }
    // A callback (or the handshake) ended this connection: the rest of the bytes belong to it.
    if (epoch_ != epoch || state_ == State::Down) return;
  }
}

void RedisConnection::handshake_reply(Pending& p, Reply&& reply, TimePoint now) {
  --setup_sent_;
  if (reply.is_error()) {
    std::string reason = p.name + " refused: " + reply.str;
    const bool keep_waiting = transient(reply.str);
    give_up(reason, Failure::ConnectionLost);
    if (!keep_waiting) fail_waiting(Failure::HandshakeFailed, "Redis " + reason);
    return;
  }
  if (setup_sent_ == 0) become_ready(now);
}

void RedisConnection::on_timeout(TimePoint now) {
  if (deadlines_.empty() || *deadlines_.begin() > now) return;
  // A sent command past its deadline ends the connection (see the header). Everything in flight
  // is answered in command order: Timeout for those past their deadline, ConnectionLost for the
  // others.
  auto late = std::find_if(inflight_.begin(), inflight_.end(),
                           [&](const Pending& p) { return p.deadline <= now; });
  if (late != inflight_.end()) {
    const std::string reason =
        "no reply to " + late->name + " within " + describe(late->deadline - late->issued);
    std::deque<Pending> gone = take_down(reason);
    want_close_ = true;
    fail_inflight(gone, Failure::ConnectionLost, now);
  }
  // Waiting commands past their deadline fail; taken out first, since callbacks may queue more.
  std::vector<Pending> expired;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->deadline <= now) {
      deadlines_.erase(it->deadline_it);
      expired.push_back(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (Pending& p : expired) {
    ++stats_.timeouts;
    std::string why = state_ == State::Handshake ? "the connection's handshake is not done"
                      : down_reason_.empty()     ? "not connected yet"
                                                 : "down: " + down_reason_;
    finish(p, core::unexpected(CommandError{
                  Failure::Timeout, "Redis: " + p.name + " not sent within " +
                                        describe(p.deadline - p.issued) + " (" + why + ")"}));
  }
}

void RedisConnection::on_closed(std::string_view why, TimePoint now) {
  (void)now;
  if (want_close_) {  // the owner closed it because we asked: the reason is ours
    want_close_ = false;
    return;
  }
  if (state_ == State::Down) {  // a connect attempt that failed
    down_reason_ = std::string(why);
    return;
  }
  std::deque<Pending> gone = take_down(std::string(why));
  fail_inflight(gone, Failure::ConnectionLost);
}

void RedisConnection::shutdown(TimePoint now) {
  (void)now;
  shut_down_ = true;
  std::deque<Pending> gone = take_down("the Redis client was closed");
  want_close_ = false;
  fail_inflight(gone, Failure::Closed);
  fail_waiting(Failure::Closed, "the Redis client was closed");
}

std::deque<RedisConnection::Pending> RedisConnection::take_down(std::string reason) {
  down_reason_ = std::move(reason);
  state_ = State::Down;
  ++epoch_;
  out_.clear();
  out_off_ = 0;
  setup_sent_ = 0;
  std::deque<Pending> gone;
  gone.swap(inflight_);
  for (Pending& p : gone)
    deadlines_.erase(p.deadline_it);
  return gone;
}

void RedisConnection::give_up(std::string reason, Failure inflight_failure) {
  std::deque<Pending> gone = take_down(std::move(reason));
  want_close_ = true;
  fail_inflight(gone, inflight_failure);
}

void RedisConnection::fail_inflight(std::deque<Pending>& gone, Failure f,
                                    std::optional<TimePoint> timed_out_at) {
  const std::string why = down_reason_;  // a callback may end things again meanwhile
  for (Pending& p : gone) {
    if (timed_out_at && p.deadline <= *timed_out_at) {
      ++stats_.timeouts;
      if (p.kind != Kind::User) continue;
      finish(p, core::unexpected(
                    CommandError{Failure::Timeout, "Redis: no reply to " + p.name + " within " +
                                                       describe(p.deadline - p.issued)}));
      continue;
    }
    if (p.kind != Kind::User) continue;
    std::string message =
        f == Failure::ConnectionLost
            ? "Redis connection lost before the reply to " + p.name + " (it may have run): " + why
            : "Redis: " + p.name + ": " + why;
    finish(p, core::unexpected(CommandError{f, std::move(message)}));
  }
}

void RedisConnection::fail_waiting(Failure f, const std::string& why) {
  std::deque<Pending> gone;
  gone.swap(waiting_);
  for (Pending& p : gone)
    deadlines_.erase(p.deadline_it);
  for (Pending& p : gone)
    finish(p, core::unexpected(CommandError{f, p.name + " not sent: " + why}));
}

void RedisConnection::finish(Pending& p, Result&& r) {
  if (r.ok()) {
    ++stats_.replies;
  } else {
    ++stats_.failed;
  }
  if (p.done) p.done(std::move(r));
}

void RedisConnection::consume_output(size_t n) {
  stats_.bytes_out += n;
  out_off_ += n;
  if (out_off_ >= out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
}

std::optional<TimePoint> RedisConnection::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return *deadlines_.begin();
}

}  // namespace mxp::cluster
