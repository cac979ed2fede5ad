// CSV and JSON Lines records: the user's columns first (same delimiter, untouched), ours after,
// renamed on a clash; fields quoted for the delimiter in use; a record too long to keep gets
// empty user fields, never a broken line.
#include "app/output.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace mxp::app {
namespace {

size_t column(std::string_view name) {
  const auto& c = RecordFormatter::columns();
  return static_cast<size_t>(std::find(c.begin(), c.end(), name) - c.begin());
}

pipeline::Result sample() {
  pipeline::Result r;
  r.line = 2;
  r.email = "a;b@x.test";
  r.normalized = "a;b@x.test";
  r.verdict = Verdict::Deliverable;
  r.reason = Reason::Accepted;
  r.has_smtp = true;
  r.code = 250;
  r.message = "ok \"fine\"";
  r.checked_at = std::chrono::system_clock::from_time_t(1795811467);
  return r;
}

TEST(RecordFormatter, PlainCsvHasOurColumnsOnly) {
  RecordFormatter f(OutputFormat::Csv, false);
  EXPECT_EQ(f.header().substr(0, 30), "line,email,normalized,verdict,");
  std::string out;
  f.append(sample(), "", out);
  auto fields = RecordFormatter::split_csv_line(out.substr(0, out.size() - 2), ',');
  ASSERT_EQ(fields.size(), RecordFormatter::columns().size());
  EXPECT_EQ(fields[1], "a;b@x.test");
  EXPECT_EQ(fields[10], "ok \"fine\"");
  EXPECT_EQ(fields[column("cached")], "false");
  EXPECT_EQ(fields[column("tls_version")], "");  // no TLS
  EXPECT_EQ(fields[column("tls_cipher")], "");
  EXPECT_EQ(fields[column("helo")], "");       // no session
  EXPECT_EQ(fields[column("mail_from")], "");  // none sent
  // Issue 21's columns, appended.
  EXPECT_EQ(fields[column("provider")], "");
  EXPECT_EQ(fields[column("tag")], "");
  EXPECT_EQ(fields[column("base")], "a;b@x.test");
  EXPECT_EQ(fields[column("canonical")], "");
  EXPECT_EQ(fields[column("score")], "85");
  EXPECT_EQ(fields[column("score_factors")], "accepted:90;catch_all_unknown:-5");
  EXPECT_EQ(fields[column("mx_tried")], "");  // no server tried
  EXPECT_EQ(fields[column("retry_after")], "");
  auto tls = sample();
  tls.tls_version = "TLSv1.3";
  tls.tls_cipher = "TLS_AES_128_GCM_SHA256";
  tls.helo = "probe1.example.test";
  tls.mail_from = "<>";
  out.clear();
  f.append(tls, "", out);
  fields = RecordFormatter::split_csv_line(out.substr(0, out.size() - 2), ',');
  EXPECT_EQ(fields[column("tls_version")], "TLSv1.3");
  EXPECT_EQ(fields[column("tls_cipher")], "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(fields[column("helo")], "probe1.example.test");
  EXPECT_EQ(fields[column("mail_from")], "<>");
  // New columns are appended: consumers that count columns keep working.
  EXPECT_NE(f.header().find(",cached,tls_version,tls_cipher,helo,mail_from,provider,tag,base,"
                            "canonical,score,score_factors,mx_tried,retry_after\r\n"),
            std::string::npos);
  EXPECT_NE(f.header().find(",provider,tag,base,canonical,score,score_factors"), std::string::npos);
}

// mx_tried is the record's JSON array in one field (quoted for CSV), retry_after RFC 3339.
TEST(RecordFormatter, MxTriedAndRetryAfterColumns) {
  RecordFormatter f(OutputFormat::Csv, false);
  auto r = sample();
  r.verdict = Verdict::Unknown;
  r.reason = Reason::Greylisted;
  pipeline::MxTry t;
  t.mx = "mx1.x.test";
  t.ip = "127.0.0.1";
  t.stage = "rcpt_to";
  t.code = 451;
  t.enhanced = "4.7.1";
  t.message = "try again, later";
  pipeline::add_mx_try(r, t);
  r.retry_after = r.checked_at + std::chrono::seconds(60);
  std::string out;
  f.append(r, "", out);
  auto fields = RecordFormatter::split_csv_line(out.substr(0, out.size() - 2), ',');
  ASSERT_EQ(fields.size(), RecordFormatter::columns().size());
  EXPECT_EQ(fields[column("mx_tried")],
            R"([{"mx":"mx1.x.test","ip":"127.0.0.1","stage":"rcpt_to","code":451,)"
            R"("enhanced":"4.7.1","message":"try again, later","error":null,"source_ip":null}])");
  EXPECT_EQ(fields[column("retry_after")], "2026-11-27T20:32:07Z");
  EXPECT_EQ(column("mx_tried"), column("score_factors") + 1);
  EXPECT_EQ(column("retry_after"), RecordFormatter::columns().size() - 1);
}

TEST(RecordFormatter, CsvInputColumnsComeFirstWithTheirDelimiter) {
  RecordFormatter f(OutputFormat::Csv, false);
  f.set_input_header("ID;EMAIL;\"note;x\"", ';');
  EXPECT_TRUE(f.keeps_input_columns());
  std::string h = f.header();
  ASSERT_EQ(h.substr(h.size() - 2), "\r\n");
  auto names = RecordFormatter::split_csv_line(h.substr(0, h.size() - 2), ';');
  ASSERT_EQ(names.size(), 3 + RecordFormatter::columns().size());
  EXPECT_EQ(names[2], "note;x");
  EXPECT_EQ(names[3], "line");
  EXPECT_EQ(names[4], "mxprobe_email");  // "EMAIL" is the user's (case-insensitive clash)
  EXPECT_EQ(names[5], "normalized");
  std::string out;
  f.append(sample(), "7;a;b@x.test;\"n;1\"", out);
  auto fields = RecordFormatter::split_csv_line(out.substr(0, out.size() - 2), ';');
  EXPECT_EQ(fields[0], "7");
  EXPECT_EQ(fields[3], "n;1");         // the user's record untouched
  EXPECT_EQ(fields[5], "a;b@x.test");  // ours, quoted for ';'
  // A record too long to keep: the user's three columns are empty, the line still parses.
  out.clear();
  f.append(sample(), "", out);
  fields = RecordFormatter::split_csv_line(out.substr(0, out.size() - 2), ';');
  ASSERT_EQ(fields.size(), names.size());
  EXPECT_EQ(fields[0], "");
  EXPECT_EQ(fields[2], "");
  EXPECT_EQ(fields[3], "2");
}

TEST(RecordFormatter, JsonLinesIgnoreTheInputColumns) {
  RecordFormatter f(OutputFormat::Jsonl, false);
  f.set_input_header("id,email", ',');
  EXPECT_FALSE(f.keeps_input_columns());
  EXPECT_EQ(f.header(), "");
  std::string out;
  f.append(sample(), "1,a;b@x.test", out);
  EXPECT_EQ(out.rfind("{\"line\":2,", 0), 0u) << out;
  EXPECT_EQ(out.back(), '\n');
}

}  // namespace
}  // namespace mxp::app
