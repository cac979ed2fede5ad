// Micro-benchmarks: reply parser throughput on typical EHLO and RCPT replies, and whole
// verification sessions (banner to QUIT, 1 and 10 recipients) driven in memory, per session.
#include <benchmark/benchmark.h>

#include <string>

#include "smtp/reply_parser.hpp"
#include "smtp/session.hpp"

using namespace mxp::smtp;

namespace {

constexpr std::string_view kBanner = "220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n";
constexpr std::string_view kEhlo =
    "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";

std::string rcpt_replies(int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += i % 3 == 2 ? "550 5.1.1 <u@example.org>: Recipient address rejected: User unknown in "
                      "local recipient table\r\n"
                    : "250 2.1.5 Ok\r\n";
  return s;
}

void parse_all(benchmark::State& state, std::string_view wire, size_t chunk) {
  ReplyParser p;
  size_t replies = 0;
  for (auto _ : state) {
    for (size_t off = 0; off < wire.size(); off += chunk) {
      std::string_view in = wire.substr(off, chunk);
      while (auto r = p.next(in)) {
        benchmark::DoNotOptimize(r->code);
        ++replies;
      }
    }
  }
  if (p.failed()) state.SkipWithError("parse error");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
  state.counters["replies/s"] =
      benchmark::Counter(static_cast<double>(replies), benchmark::Counter::kIsRate);
}

void BM_ParseEhloReply(benchmark::State& state) {
  parse_all(state, kEhlo, kEhlo.size());
}
BENCHMARK(BM_ParseEhloReply);

void BM_ParseRcptReplies(benchmark::State& state) {
  const std::string wire = rcpt_replies(30);
  parse_all(state, wire, wire.size());
}
BENCHMARK(BM_ParseRcptReplies);

// Worst case for the line buffer: the server's bytes arrive one at a time.
void BM_ParseEhloByteByByte(benchmark::State& state) {
  parse_all(state, kEhlo, 1);
}
BENCHMARK(BM_ParseEhloByteByByte);

void BM_Session(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const bool pipelining = state.range(1) != 0;
  SessionConfig cfg;
  cfg.helo_name = "probe.mxprobe.test";
  cfg.mail_from = "verify@mxprobe.test";
  cfg.use_pipelining = pipelining;
  std::string addrs[10];
  for (int i = 0; i < 10; ++i)
    addrs[i] = "user" + std::to_string(i) + "@example.org";
  const std::string replies = "250 2.1.0 Ok\r\n" + rcpt_replies(n);
  const TimePoint now = TimePoint{} + std::chrono::hours(1);
  size_t written = 0;
  for (auto _ : state) {
    Session s(cfg);
    for (int i = 0; i < n; ++i)
      s.add_recipient(addrs[i], static_cast<uint64_t>(i), now);
    s.finish(now);
    s.start(now);
    s.on_connected(now);
    auto flush = [&] {
      written += s.pending_output().size();
      s.consume_output(s.pending_output().size());
    };
    s.on_bytes(kBanner, now);
    flush();
    s.on_bytes(kEhlo, now);
    flush();
    if (pipelining) {
      s.on_bytes(replies, now);
      flush();
    } else {  // one reply per command
      std::string_view rest = replies;
      while (!rest.empty()) {
        const size_t e = rest.find('\n') + 1;
        s.on_bytes(rest.substr(0, e), now);
        rest.remove_prefix(e);
        flush();
      }
    }
    s.on_bytes("221 2.0.0 Bye\r\n", now);
    flush();
    size_t decided = 0;
    while (auto r = s.pop_result())
      decided += r->outcome.reply.code != 0;
    if (decided != static_cast<size_t>(n) || !s.done()) state.SkipWithError("session incomplete");
    s.on_closed(now);
  }
  benchmark::DoNotOptimize(written);
  state.SetItemsProcessed(state.iterations() * n);  // recipients checked
  state.counters["sessions/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Session)
    ->ArgNames({"rcpts", "pipelining"})
    ->Args({1, 1})
    ->Args({10, 1})
    ->Args({10, 0});

}  // namespace
