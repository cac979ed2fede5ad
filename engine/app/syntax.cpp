#include "app/syntax.hpp"

#include <unistd.h>

#include <memory>

#include "address/address.hpp"
#include "app/io.hpp"
#include "core/json_out.hpp"
#include "core/progress.hpp"

namespace mxp::app {

void format_syntax_record(const Record& r, std::string& out, SyntaxStats& stats,
                          const flags::DomainData* data, flags::FlagsMemo* memo) {
  ++stats.records;
  out.append("{\"line\":");
  json::append_uint(out, r.number);
  out.append(",\"email\":");
  if (r.issue == RecordIssue::MissingColumn || r.issue == RecordIssue::RecordTooLong)
    out.append("null");
  else
    json::append_string(out, r.field);

  std::string_view error;
  address::ParseResult parsed;
  if (r.issue != RecordIssue::None) {
    error = to_string(r.issue);
  } else {
    parsed = address::parse(r.field);
    if (!parsed.ok()) error = address::to_string(parsed.error);
  }
  if (error.empty()) {
    ++stats.ok;
    out.append(",\"ok\":true,\"normalized\":");
    json::append_string(out, parsed.address.normalized());
    out.append(",\"error\":null,\"role\":");
    out.append(parsed.address.role ? "true" : "false");
    out.append(",\"smtputf8\":");
    out.append(parsed.address.smtputf8 ? "true" : "false");
    const flags::DomainFlags computed =
        memo ? flags::DomainFlags{} : flags::domain_flags(data, parsed.address.domain);
    const flags::DomainFlags& f = memo ? memo->get(data, parsed.address.domain) : computed;
    auto opt = [&](std::optional<bool> b) { out.append(!b ? "null" : *b ? "true" : "false"); };
    out.append(",\"disposable\":");
    opt(f.disposable);
    out.append(",\"free\":");
    opt(f.free);
    out.append(",\"suggestion\":");
    if (f.suggestion.empty()) {
      out.append("null");
    } else {
      std::string n = parsed.address.normalized();
      n.erase(n.rfind('@') + 1);
      json::append_string(out, n + f.suggestion);
    }
    out.append("}\n");
  } else {
    ++stats.bad;
    out.append(",\"ok\":false,\"normalized\":null,\"error\":\"");
    out.append(error);  // fixed snake_case vocabulary: nothing to escape
    out.append(
        "\",\"role\":null,\"smtputf8\":null,\"disposable\":null,\"free\":null,"
        "\"suggestion\":null}\n");
  }
}

int run_syntax(const SyntaxOptions& opts, std::FILE* diag) {
  InputFile in;
  OutputFile out;
  auto opened = in.open(opts.input);
  if (opened) opened = out.open(opts.output);
  if (!opened) {
    std::fprintf(diag, "mxprobe syntax: %s\n", opened.error().c_str());
    return 2;
  }
  std::string err;  // the first write error
  auto write = [&](std::string_view data) {
    auto w = out.write(data);
    if (!w) err = w.error();
    return w.ok();
  };

  std::shared_ptr<const flags::DomainData> data;
  if (auto d = flags::load_domain_data(opts.domain_data))
    data = std::move(d->data);
  else
    std::fprintf(diag, "mxprobe syntax: warning: %s\n", d.error().c_str());
  flags::FlagsMemo memo;

  constexpr size_t kBlock = 1 << 20;
  std::string buf;
  buf.reserve(kBlock + 4096);
  SyntaxStats stats;
  bool write_failed = false;
  RecordReader reader(opts.records, [&](const Record& r) {
    format_syntax_record(r, buf, stats, data.get(), &memo);
    if (buf.size() >= kBlock) {
      if (!write_failed && !write(buf)) write_failed = true;
      buf.clear();
    }
  });

  bool tty = isatty(fileno(diag));
  bool show = opts.progress == 1 || (opts.progress == -1 && tty);
  Progress progress(diag, tty && opts.progress != 1, "lines");
  ProgressState ps;
  ps.bytes_total = in.size();
  auto update = [&](bool final) {
    if (!show) return;
    ps.done = stats.records;
    ps.counts = {{"ok", stats.ok}, {"invalid", stats.bad}};
    final ? progress.finish(ps) : progress.maybe_draw(ps, false);
  };

  auto chunk = std::make_unique<char[]>(kBlock);
  for (;;) {
    auto n = in.read(chunk.get(), kBlock);
    if (!n) {
      std::fprintf(diag, "mxprobe syntax: %s\n", n.error().c_str());
      return 1;
    }
    if (*n == 0) break;
    ps.bytes_done = in.consumed();
    if (!reader.feed({chunk.get(), *n})) break;
    if (write_failed) break;
    update(false);
  }
  bool ok = reader.error().empty() && reader.finish();
  if (!write_failed && !write(buf)) write_failed = true;
  if (!write_failed) {
    if (auto c = out.close(); !c) {
      err = c.error();
      write_failed = true;
    }
  }
  update(true);
  if (!ok) {
    std::fprintf(diag, "mxprobe syntax: %s\n", reader.error().c_str());
    return 2;
  }
  if (write_failed) {
    std::fprintf(diag, "mxprobe syntax: %s\n", err.c_str());
    return 1;
  }
  if (show || opts.progress == 1)
    std::fprintf(diag, "mxprobe syntax: %llu records, %llu valid, %llu invalid\n",
                 (unsigned long long)stats.records, (unsigned long long)stats.ok,
                 (unsigned long long)stats.bad);
  return 0;
}

}  // namespace mxp::app
