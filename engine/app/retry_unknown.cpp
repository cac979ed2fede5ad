// `mxprobe verify --retry-unknown OLD_OUTPUT`: the unknowns of an earlier output whose
// retry_after has come are verified again; every other record is copied through as it was, so
// the new output has the old one's records, lines and order (docs/jobs.md, "Asking again").
// The addresses due go through an ordinary verify run (a temporary list in, JSON Lines out),
// whose records then take the place of the old ones.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/io.hpp"
#include "app/output.hpp"
#include "app/verify.hpp"
#include "core/strings.hpp"

namespace mxp::app {
namespace {

using Clock = std::chrono::system_clock;

// One record of the old output, as far as --retry-unknown needs it.
struct OldRecord {
  bool ok = false;  // an mxprobe record (else copied through untouched)
  uint64_t line = 0;
  std::string email;
  bool unknown = false;
  std::optional<Clock::time_point> retry_after;
};

// The column layout of an old CSV output: where our columns are, and the delimiter.
struct CsvLayout {
  unsigned char delim = ',';
  size_t user_columns = 0;  // the input's own columns before ours
  size_t line = 0, email = 0, verdict = 0, retry_after = 0;
  std::string user_header;  // the input's header line (its columns only)
};

// Our columns end the header (each named NAME or mxprobe_NAME): the layout, or the error.
std::optional<CsvLayout> csv_layout(const std::string& header, std::string& err) {
  const auto& ours = RecordFormatter::columns();
  for (unsigned char d : {',', ';', '\t', '|'}) {
    auto names = RecordFormatter::split_csv_line(header, d);
    if (names.size() < ours.size()) continue;
    const size_t first = names.size() - ours.size();
    bool match = true;
    for (size_t i = 0; i < ours.size() && match; ++i) {
      const std::string n = core::lower(names[first + i]);
      match = n == ours[i] || n == "mxprobe_" + std::string(ours[i]);
    }
    if (!match) continue;
    CsvLayout l;
    l.delim = d;
    l.user_columns = first;
    auto at = [&](std::string_view name) {
      for (size_t i = 0; i < ours.size(); ++i)
        if (ours[i] == name) return first + i;
      return size_t{0};
    };
    l.line = at("line");
    l.email = at("email");
    l.verdict = at("verdict");
    l.retry_after = at("retry_after");
    if (first > 0) {
      // The input's header as it was: the text before our first column's name.
      size_t pos = 0, seen = 0;
      bool quoted = false;
      for (; pos < header.size(); ++pos) {
        if (header[pos] == '"') quoted = !quoted;
        if (!quoted && static_cast<unsigned char>(header[pos]) == d && ++seen == first) break;
      }
      l.user_header = header.substr(0, pos);
    }
    return l;
  }
  err = "its CSV header does not end with the columns of this mxprobe's records (" +
        std::string(ours.front()) + " ... " + std::string(ours.back()) +
        "): is it an mxprobe verify output?";
  return std::nullopt;
}

OldRecord read_json(const std::string& text) {
  OldRecord r;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return r;
  auto line = j.find("line");
  auto email = j.find("email");
  auto verdict = j.find("verdict");
  if (line == j.end() || !line->is_number_unsigned() || email == j.end() || !email->is_string() ||
      verdict == j.end() || !verdict->is_string())
    return r;
  r.ok = true;
  r.line = line->get<uint64_t>();
  r.email = email->get<std::string>();
  r.unknown = verdict->get<std::string>() == "unknown";
  if (auto it = j.find("retry_after"); it != j.end() && it->is_string())
    r.retry_after = pipeline::parse_iso8601(it->get<std::string>());
  return r;
}

OldRecord read_csv(const std::vector<std::string>& f, const CsvLayout& l) {
  OldRecord r;
  if (f.size() != l.user_columns + RecordFormatter::columns().size()) return r;
  char* end = nullptr;
  r.line = std::strtoull(f[l.line].c_str(), &end, 10);
  if (f[l.line].empty() || *end) return r;
  r.ok = true;
  r.email = f[l.email];
  r.unknown = f[l.verdict] == "unknown";
  if (!f[l.retry_after].empty()) r.retry_after = pipeline::parse_iso8601(f[l.retry_after]);
  return r;
}

// Reads the old output record by record: a JSON line, or a CSV record (which may run over
// several lines inside quotes).
class OldReader {
 public:
  explicit OldReader(const std::string& path) : in_(path, std::ios::binary) {}
  bool is_open() const { return in_.is_open(); }
  bool next(std::string& rec, bool csv) {
    rec.clear();
    std::string line;
    bool quoted = false;
    while (std::getline(in_, line)) {
      if (!rec.empty()) rec.push_back('\n');
      rec += line;
      if (csv)
        for (char c : line)
          if (c == '"') quoted = !quoted;
      if (!quoted) {
        if (!rec.empty() && rec.back() == '\r') rec.pop_back();
        return true;
      }
    }
    return !rec.empty();
  }

 private:
  std::ifstream in_;
};

// A CSV field quoted as RFC 4180 wants it, when it needs to be.
void csv_field(std::string& out, const std::string& v, unsigned char delim) {
  if (v.find_first_of(std::string{static_cast<char>(delim), '"', '\r', '\n'}) ==
      std::string::npos) {
    out += v;
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

struct TempDir {
  std::string path;
  ~TempDir() {
    if (path.empty()) return;
    for (const char* f : {"/due.txt", "/due.jsonl"})
      ::unlink((path + f).c_str());
    ::rmdir(path.c_str());
  }
};

}  // namespace

int run_retry_unknown(const VerifyOptions& opts, const EngineOptions& eng, std::FILE* diag) {
  const std::string& old_path = opts.retry_unknown;
  const char* me = "mxprobe verify --retry-unknown";
  if (opts.output == "-" || opts.output.empty()) {
    std::fprintf(diag, "%s: give the new output with -o (the old one, %s, is kept as it is)\n", me,
                 old_path.c_str());
    return 2;
  }
  struct stat a {
  }, b{};
  if (opts.output == old_path ||
      (stat(old_path.c_str(), &a) == 0 && stat(opts.output.c_str(), &b) == 0 &&
       a.st_ino == b.st_ino && a.st_dev == b.st_dev)) {
    std::fprintf(diag, "%s: -o %s is the old output itself: name a new file\n", me,
                 opts.output.c_str());
    return 2;
  }
  OldReader first(old_path);
  if (!first.is_open()) {
    std::fprintf(diag, "%s: cannot open %s\n", me, old_path.c_str());
    return 2;
  }
  // The format is the old output's: a JSON record starts with '{', anything else is CSV.
  std::string rec;
  if (!first.next(rec, false)) {
    std::fprintf(diag, "%s: %s is empty\n", me, old_path.c_str());
    return 2;
  }
  const bool csv = rec.empty() || rec.front() != '{';
  // The new output is in the old one's format: a name or --format that says otherwise is an
  // error rather than a file that reads wrong.
  const std::string ext = output_extension(opts.output);
  const bool csv_name = ext == ".csv";
  const bool json_name = ext == ".jsonl" || ext == ".ndjson" || ext == ".json";
  if ((csv && (json_name || (opts.format_given && opts.format != OutputFormat::Csv))) ||
      (!csv && (csv_name || (opts.format_given && opts.format != OutputFormat::Jsonl)))) {
    std::fprintf(diag,
                 "%s: %s is %s, and the new output keeps its format: name it *.%s and leave "
                 "out --format\n",
                 me, old_path.c_str(), csv ? "CSV" : "JSON Lines", csv ? "csv" : "jsonl");
    return 2;
  }
  std::optional<CsvLayout> layout;
  std::string header;
  if (csv) {
    std::string err;
    header = rec;
    layout = csv_layout(header, err);
    if (!layout) {
      std::fprintf(diag, "%s: %s: %s\n", me, old_path.c_str(), err.c_str());
      return 2;
    }
  }
  auto parse = [&](const std::string& text) {
    return csv ? read_csv(RecordFormatter::split_csv_line(text, layout->delim), *layout)
               : read_json(text);
  };

  // Pass 1: which records are due. Their addresses go to a temporary list, in order.
  TempDir tmp;
  {
    std::string dir = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t && *t) dir = t;
    std::string templ = dir + "/mxprobe-retry-XXXXXX";
    if (!::mkdtemp(templ.data())) {
      std::fprintf(diag, "%s: cannot make a temporary directory in %s\n", me, dir.c_str());
      return 1;
    }
    tmp.path = templ;
  }
  const Clock::time_point now = Clock::now();
  uint64_t due = 0, not_due = 0, others = 0, unknown_without = 0;
  std::optional<Clock::time_point> next_due;
  {
    std::ofstream list(tmp.path + "/due.txt", std::ios::binary);
    auto consider = [&](const std::string& text) {
      const OldRecord r = parse(text);
      if (!r.ok || !r.unknown) return ++others, void();
      if (!r.retry_after) return ++unknown_without, void();
      if (*r.retry_after > now) {
        ++not_due;
        if (!next_due || *r.retry_after < *next_due) next_due = r.retry_after;
        return;
      }
      ++due;
      list << r.email << '\n';
    };
    if (!csv) consider(rec);
    while (first.next(rec, csv))
      if (!rec.empty()) consider(rec);
    if (!list) {
      std::fprintf(diag, "%s: cannot write the temporary list in %s\n", me, tmp.path.c_str());
      return 1;
    }
  }
  const std::string next_text =
      next_due ? " (the next at " + pipeline::iso8601(*next_due) + ")" : std::string();
  if (!opts.quiet)
    std::fprintf(diag,
                 "%s: %s: %llu unknown addresses are due to be asked again, %llu not yet due%s, "
                 "%llu unknown with nothing to ask again, %llu other records copied unchanged\n",
                 me, old_path.c_str(), static_cast<unsigned long long>(due),
                 static_cast<unsigned long long>(not_due), next_text.c_str(),
                 static_cast<unsigned long long>(unknown_without),
                 static_cast<unsigned long long>(others));

  // The due addresses: an ordinary run, records in the order of the temporary list.
  if (due > 0) {
    VerifyOptions run = opts;
    run.retry_unknown.clear();
    run.input = tmp.path + "/due.txt";
    run.output = tmp.path + "/due.jsonl";
    run.format = OutputFormat::Jsonl;
    run.format_given = true;
    run.records = RecordOptions{};
    run.records.format = InputFormat::Lines;
    run.order_input = true;
    run.no_journal = true;
    run.resume = false;
    run.journal.clear();
    if (int rc = run_verify(run, eng, diag); rc != 0) {
      std::fprintf(diag, "%s: the run stopped (exit %d): %s was not written; run it again\n", me,
                   rc, opts.output.c_str());
      return rc;
    }
  }

  // Pass 2: the old records in order, each due one replaced by its new record.
  OutputFile out;
  if (auto o = out.open(opts.output); !o) {
    std::fprintf(diag, "%s: %s\n", me, o.error().c_str());
    return 2;
  }
  RecordFormatter fmt(csv ? OutputFormat::Csv : OutputFormat::Jsonl, opts.transcripts);
  if (csv && layout->user_columns > 0) fmt.set_input_header(layout->user_header, layout->delim);
  std::ifstream fresh(tmp.path + "/due.jsonl", std::ios::binary);
  OldReader again(old_path);
  std::string buf, fresh_line;
  uint64_t asked = 0, decided = 0, still_unknown = 0;
  if (csv) {
    again.next(rec, false);  // the header, as it was
    buf = rec + "\r\n";
  }
  auto write = [&]() -> bool {
    if (buf.size() < (1u << 16)) return true;
    auto w = out.write(buf);
    buf.clear();
    if (!w) std::fprintf(diag, "%s: %s\n", me, w.error().c_str());
    return static_cast<bool>(w);
  };
  while (again.next(rec, csv)) {
    const OldRecord r = rec.empty() ? OldRecord{} : parse(rec);
    const bool is_due = r.ok && r.unknown && r.retry_after && *r.retry_after <= now;
    if (!is_due || !std::getline(fresh, fresh_line)) {
      if (is_due)
        std::fprintf(diag, "%s: no new record for line %llu: kept the old one\n", me,
                     static_cast<unsigned long long>(r.line));
      buf += rec;
      buf += csv ? "\r\n" : "\n";
      if (!write()) return 1;
      continue;
    }
    auto parsed = pipeline::parse_json(fresh_line);
    if (!parsed) {
      buf += rec;
      buf += csv ? "\r\n" : "\n";
      if (!write()) return 1;
      continue;
    }
    pipeline::Result& n = *parsed;
    n.line = r.line;
    ++asked;
    if (n.verdict == Verdict::Unknown)
      ++still_unknown;
    else
      ++decided;
    std::string user;  // the input's own columns of the old row, as they were
    if (csv && layout->user_columns > 0) {
      const auto f = RecordFormatter::split_csv_line(rec, layout->delim);
      for (size_t i = 0; i < layout->user_columns && i < f.size(); ++i) {
        if (i) user.push_back(static_cast<char>(layout->delim));
        csv_field(user, f[i], layout->delim);
      }
    }
    fmt.append(n, user, buf);
    if (!write()) return 1;
  }
  if (auto w = out.write(buf); !w) {
    std::fprintf(diag, "%s: %s\n", me, w.error().c_str());
    return 1;
  }
  if (auto c = out.close(); !c) {
    std::fprintf(diag, "%s: %s\n", me, c.error().c_str());
    return 1;
  }
  if (!opts.quiet)
    std::fprintf(diag,
                 "%s: wrote %s: %llu asked again (%llu now have a verdict, %llu still unknown), "
                 "%llu not yet due%s, %llu copied unchanged\n",
                 me, opts.output.c_str(), static_cast<unsigned long long>(asked),
                 static_cast<unsigned long long>(decided),
                 static_cast<unsigned long long>(still_unknown),
                 static_cast<unsigned long long>(not_due), next_text.c_str(),
                 static_cast<unsigned long long>(others + unknown_without + not_due));
  return 0;
}

}  // namespace mxp::app
