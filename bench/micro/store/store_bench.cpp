// Results recorded per second (items/s) through ResultBatch into a temporary SQLite store in WAL
// mode, committing every 1, 100 or 1000 results: each commit is one transaction that inserts the
// results and marks their rows done.
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/sqlite_store.hpp"

namespace {

using namespace mxp::store;
using namespace std::chrono_literals;

constexpr uint64_t kRowChunk = 100'000;

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Real lists are not sorted: scatter the addresses (and so the cache-index inserts) like them.
std::string address(uint64_t line) {
  uint64_t z = line + 0x9e3779b97f4a7c15ull;  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return "u" + std::to_string(z) + "@d" + std::to_string(z % 1000) + ".example";
}

void BM_RecordResults(benchmark::State& state) {
  const auto batch_size = static_cast<size_t>(state.range(0));
  std::string dir = (std::filesystem::temp_directory_path() / "mxp-store-bench-XXXXXX").string();
  if (!mkdtemp(dir.data())) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  {
    auto s = SqliteStore::open(dir + "/bench.db");
    if (!s) {
      state.SkipWithError(s.error().message.c_str());
      return;
    }
    SqliteStore& st = **s;
    JobId job = *st.create_job("bench", "{}");
    uint64_t rows_added = 0, next = 1;
    auto add_rows = [&] {
      std::vector<RowIn> rows;
      rows.reserve(kRowChunk);
      for (uint64_t i = 0; i < kRowChunk; ++i) {
        const uint64_t line = rows_added + i + 1;
        rows.push_back({line, address(line), address(line)});
      }
      rows_added += kRowChunk;
      return st.add_rows(job, rows).ok();
    };
    ResultRecord proto;
    proto.verdict = "deliverable";
    proto.reason = "accepted";
    proto.checked_at = 1'800'000'000;
    // A realistic record size (~400 bytes, like the example in docs/records.md).
    const std::string tail =
        R"(,"verdict":"deliverable","reason":"accepted","domain":"example.test","mx":"mx1.example.test","mx_ip":"127.0.0.10","smtp":{"code":250,"enhanced":"2.1.5","message":"Ok"},"catch_all":false,"flags":{"role":false,"disposable":false,"free":false},"attempts":1,"source_ip":null,"elapsed_ms":1.2,"checked_at":"2027-01-15T08:00:00Z"})";
    ResultBatch batch(st, job, batch_size, 1h);
    const double cpu_start_us = cpu_seconds() * 1e6;
    double paused_us = 0;  // CPU spent adding rows (untimed), taken out of cpu_us_per_result
    for (auto _ : state) {
      for (size_t i = 0; i < batch_size; ++i) {
        if (next > rows_added) {
          state.PauseTiming();
          const double t = cpu_seconds();
          bool ok = add_rows();
          paused_us += (cpu_seconds() - t) * 1e6;
          state.ResumeTiming();
          if (!ok) {
            state.SkipWithError("add_rows failed");
            break;
          }
        }
        ResultRecord r = proto;
        r.line = next;
        r.json =
            "{\"line\":" + std::to_string(next) + ",\"email\":\"" + address(next) + "\"" + tail;
        ++next;
        if (!batch.add(std::move(r)).ok()) {
          state.SkipWithError("record_results failed");
          break;
        }
      }
    }
    if (!batch.flush().ok()) state.SkipWithError("final flush failed");
    state.SetItemsProcessed(static_cast<int64_t>(batch.committed()));
    // CPU per result (user + system, so the WAL writes count): on a shared machine this says
    // more than wall-clock items/s.
    const double cpu_us = cpu_seconds() * 1e6 - cpu_start_us - paused_us;
    if (batch.committed() > 0)
      state.counters["cpu_us_per_result"] = cpu_us / static_cast<double>(batch.committed());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
BENCHMARK(BM_RecordResults)->ArgName("batch")->Arg(1)->Arg(100)->Arg(1000)->UseRealTime();

}  // namespace
