// The whole `syntax` pipeline in memory: split records, parse each address, write its JSON line.
// 1,000,000 lines per iteration; items/s is lines per second on one core.
#include <benchmark/benchmark.h>

#include <string>

#include "app/syntax.hpp"

namespace {

std::string make_list(size_t n, bool csv) {
  static const char* kSamples[] = {
      "john.smith@example.com",
      "Jane.Doe+news@Sub.Example.ORG",
      "info@company.example",
      "not-an-address",
      "\"quoted name\"@example.net",
      "user@bücher.example",
      "a@b",
      "x..y@example.com",
      "someone@gmail.com",
  };
  std::string s = csv ? "id,email,name\n" : "";
  for (size_t i = 0; i < n; ++i) {
    if (csv) s += std::to_string(i) + ",";
    std::string_view a = kSamples[i % (sizeof kSamples / sizeof *kSamples)];
    if (csv && a.find('"') != std::string_view::npos) {  // RFC 4180 quoting
      s += '"';
      for (char c : a)
        s += c == '"' ? std::string("\"\"") : std::string(1, c);
      s += '"';
    } else {
      s += a;
    }
    if (csv) s += ",Someone";
    s += '\n';
  }
  return s;
}

void run(benchmark::State& state, bool csv) {
  const size_t n = 1'000'000;
  std::string input = make_list(n, csv);
  std::string out;
  out.reserve(1 << 21);
  for (auto _ : state) {
    mxp::app::SyntaxStats stats;
    mxp::app::RecordReader reader({}, [&](const mxp::app::Record& r) {
      mxp::app::format_syntax_record(r, out, stats);
      if (out.size() >= (1 << 20)) out.clear();  // what the writer does with a full block
    });
    for (size_t i = 0; i < input.size(); i += 1 << 20)
      reader.feed(std::string_view(input).substr(i, 1 << 20));
    reader.finish();
    benchmark::DoNotOptimize(out.data());
    if (stats.records != n) state.SkipWithError("lost records");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * input.size()));
}

void BM_SyntaxLines(benchmark::State& s) {
  run(s, false);
}
void BM_SyntaxCsv(benchmark::State& s) {
  run(s, true);
}
BENCHMARK(BM_SyntaxLines)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(BM_SyntaxCsv)->Unit(benchmark::kMillisecond)->MinTime(2);

}  // namespace
