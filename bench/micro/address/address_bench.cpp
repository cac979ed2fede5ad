// Micro-benchmark of address::parse(): a mix shaped like a real list (mostly plain ASCII,
// some mixed case, tags, role accounts, a few refusals), and the rare paths on their own.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "address/address.hpp"

namespace {

const std::vector<std::string> kTypical = {
    "john.smith@gmail.com",
    "Jane.Doe@Example.COM",
    "info@acme-widgets.co.uk",
    "a.b+newsletter@yahoo.com",
    "  m.mueller@web.de ",
    "support@startup.io",
    "firstname.lastname@company-with-long-name.example.com",
    "x@y.org",
    "sales@shop.example.net",
    "bob_99@hotmail.co.uk",
    "invalid.address.example.com",
    "two@@example.com",
    "alice@localhost",
    "o'brien@example.ie",
    "maria.garcia@outlook.es",
    "noreply@notifications.example.com",
};

void run(benchmark::State& state, const std::vector<std::string>& inputs) {
  size_t i = 0;
  for (auto _ : state) {
    auto r = mxp::address::parse(inputs[i]);
    benchmark::DoNotOptimize(r);
    if (++i == inputs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ParseTypicalMix(benchmark::State& state) {
  run(state, kTypical);
}
BENCHMARK(BM_ParseTypicalMix);

void BM_ParseQuoted(benchmark::State& state) {
  run(state, {"\"john doe\"@example.com", "\"john.doe\"@example.com", "\"a\\\"b\"@example.org"});
}
BENCHMARK(BM_ParseQuoted);

// The IDN path calls libidn2 twice (to A-labels, and back for display): expect microseconds.
void BM_ParseIdn(benchmark::State& state) {
  run(state, {"user@b\xc3\xbc"
              "cher.example",
              "j\xc3\xb6rg@m\xc3\xbcnchen.example"});
}
BENCHMARK(BM_ParseIdn);

void BM_ParseUtf8Local(benchmark::State& state) {
  run(state, {"j\xc3\xb6rg@example.de", "\xe7\x94\xa8\xe6\x88\xb7@example.cn"});
}
BENCHMARK(BM_ParseUtf8Local);

}  // namespace
