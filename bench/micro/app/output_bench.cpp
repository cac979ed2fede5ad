// Result serialisation: ns per record for the JSON Lines record (pipeline::append_json, the
// output of `mxprobe verify` and the journal/cache form), its parse back (pipeline::parse_json),
// and the CSV output (app::RecordFormatter) of a plain list and of a CSV input whose columns are
// kept. Two records: a typical rejected RCPT and an accepted one with a quoted message.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "app/output.hpp"
#include "pipeline/result.hpp"

namespace {

using mxp::app::OutputFormat;
using mxp::app::RecordFormatter;
using mxp::pipeline::Result;

Result rejected() {
  Result r;
  r.id = 41;
  r.line = 42;
  r.email = "john.smith42@example.com";
  r.normalized = "john.smith42@example.com";
  r.verdict = mxp::Verdict::Undeliverable;
  r.reason = mxp::Reason::MailboxNotFound;
  r.domain = "example.com";
  r.mx = "mx1.example.com";
  r.mx_ip = "192.0.2.25";
  r.has_smtp = true;
  r.code = 550;
  r.enhanced = "5.1.1";
  r.message =
      "<john.smith42@example.com>: Recipient address rejected: User unknown in local recipient "
      "table";
  r.catch_all = false;
  r.role = false;
  r.attempts = 1;
  r.elapsed_ms = 12.345;
  r.checked_at = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000));
  return r;
}

Result accepted() {
  Result r = rejected();
  r.verdict = mxp::Verdict::Deliverable;
  r.reason = mxp::Reason::Accepted;
  r.code = 250;
  r.enhanced = "2.1.5";
  r.message = "Ok, \"john.smith42\" is here";
  return r;
}

void BM_AppendJson(benchmark::State& state) {
  const Result r = state.range(0) ? accepted() : rejected();
  std::string out;
  for (auto _ : state) {
    out.clear();
    mxp::pipeline::append_json(r, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_AppendJson)->Arg(0)->Arg(1)->ArgName("accepted");

void BM_ParseJson(benchmark::State& state) {
  std::string text;
  mxp::pipeline::append_json(rejected(), text);
  for (auto _ : state) {
    auto r = mxp::pipeline::parse_json(text);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseJson);

void BM_Csv(benchmark::State& state) {
  const Result r = state.range(0) ? accepted() : rejected();
  RecordFormatter fmt(OutputFormat::Csv, false);
  std::string out;
  for (auto _ : state) {
    out.clear();
    fmt.append(r, {}, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_Csv)->Arg(0)->Arg(1)->ArgName("accepted");

// CSV input whose columns are kept: the raw record is copied in front of ours.
void BM_CsvKeepColumns(benchmark::State& state) {
  const Result r = rejected();
  RecordFormatter fmt(OutputFormat::Csv, false);
  fmt.set_input_header("id,email,name,company", ',');
  const std::string raw = "42,john.smith42@example.com,John Smith,\"Example, Inc.\"";
  std::string out;
  for (auto _ : state) {
    out.clear();
    fmt.append(r, raw, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CsvKeepColumns);

}  // namespace
