// One verification result: the record of docs/records.md, and its JSON Lines form.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "address/address.hpp"
#include "core/expected.hpp"
#include "core/verdict.hpp"
#include "flags/domain_data.hpp"
#include "verdict/score.hpp"

namespace mxp::pipeline {

// One try of an address at one MX address (the record's `mx_tried`, docs/records.md): a reply
// (code, enhanced, message) or, without one, what went wrong (error).
struct MxTry {
  std::string mx, ip;  // the MX host and the address connected to
  std::string stage;   // the SMTP stage that answered or failed: "connect", "banner", "rcpt_to"...
  int code = 0;        // 0: no reply; `error` says why
  std::string enhanced, message;
  std::string error;      // "connection refused", "timed out waiting for the banner", ...
  std::string source_ip;  // "" when the kernel chose (and through a proxy)
  // The same try this many times in a row (a greylisting retried at one host says the same
  // each time): kept once in memory, written out `times` times.
  uint32_t times = 1;
  bool operator==(const MxTry&) const = default;
};

// mx_tried holds at most this many tries: the first and the latest ones (a long greylisting
// with many retries would otherwise grow a record without bound); messages are cut to
// kMaxTryMessage bytes.
inline constexpr size_t kMaxMxTried = 8;
inline constexpr size_t kMaxTryMessage = 200;

struct Result {
  uint64_t id = 0;         // the caller's id (submit order)
  uint64_t line = 0;       // input line or CSV record number
  std::string email;       // exactly as given
  std::string normalized;  // "" when the syntax check failed
  Verdict verdict = Verdict::Unknown;
  Reason reason = Reason::ProtocolError;
  std::string domain;
  std::string mx, mx_ip;  // "" when no server was reached (null in JSON)
  // Who runs the mail for the domain (verdict/provider.hpp: "gmail", "microsoft365", ...), from
  // the MX names and the greeting; "" (null) when unknown.
  std::string provider;
  bool has_smtp = false;  // a reply decided: code, enhanced, message are set
  int code = 0;
  std::string enhanced;  // "" when the reply had none
  std::string message;
  // STARTTLS: the negotiated protocol ("TLSv1.3") and cipher suite of the session that decided;
  // both "" when it had no TLS ("tls": null).
  std::string tls_version, tls_cipher;
  std::optional<bool> catch_all;
  std::optional<bool> role;
  // From the domain data (engine/flags): null when no data was loaded or there is no domain.
  std::optional<bool> disposable, free;
  std::string suggestion;  // "alice@gmail.com" for "alice@gmial.com"; "" (null) when none
  uint32_t attempts = 0;   // SMTP sessions this address took part in
  std::string source_ip;   // "" when the kernel chose (and through a proxy)
  std::string proxy;       // "socks5://host:port" the session went through, "" without one
  std::string helo;        // the EHLO/HELO name that session gave (docs/identity.md), "" if none
  // The MAIL FROM that asked ("<>" for the null sender); "" (null) when no MAIL FROM was sent
  // for this address (DNS, connect or greeting decided). docs/identity.md, "MAIL FROM".
  std::string mail_from;
  double elapsed_ms = 0;  // from the first session attempt to the verdict
  std::chrono::system_clock::time_point checked_at{};
  bool cached = false;  // reused from the results cache (checked_at: when it was checked)
  // A try of this address was greylisted (a score factor when a later try got the answer; not a
  // field of its own: parse_json reads it back from "score_factors").
  bool greylisted = false;
  std::string error;  // syntax or input error code (address parser), "" otherwise
  // Every MX host and address asked for this address, in order, with what each said (bounded:
  // kMaxMxTried); empty when no server was tried (DNS decided, or a list's answer).
  std::vector<MxTry> mx_tried;
  // For an `unknown` worth asking again (docs/verdicts.md, "When to ask again"): when; nullopt
  // (null) otherwise.
  std::optional<std::chrono::system_clock::time_point> retry_after;
  std::string transcript;  // with --verbose / check: the SMTP dialogue ("C: ...\nS: ...\n")
};

// Appends a try to r.mx_tried within its bounds: past kMaxMxTried tries the oldest one but the
// first gives way, and the message is cut (at a character boundary) to kMaxTryMessage bytes.
// A try that says what the one before said adds to that one's `times`.
void add_mx_try(Result& r, MxTry t);

// The mx_tried array as JSON ("[{...},...]"): the record's field, and the CSV column's text.
void append_mx_tried(const std::vector<MxTry>& tried, std::string& out);

// How many other MX hosts agreed and disagreed with the deciding answer at RCPT (the score's
// mx_agreed and mx_disagreed evidence, docs/score.md).
struct MxAgreement {
  uint8_t agreed = 0, disagreed = 0;
};
MxAgreement mx_agreement(const Result& r);

// Sets disposable, free and suggestion (the normalized address with the suggested domain) from
// what the domain data said about the domain of `normalized` ("local@domain").
void set_domain_flags(Result& r, const flags::DomainFlags& f, std::string_view normalized);

// The fields written from the others rather than kept: the address's spellings (tag, base,
// canonical) and the score with its factors, whose cache_age factor depends on `now` for a
// cached record. JSON, CSV and the API all write them through this, so they cannot disagree.
struct Derived {
  address::Forms forms;
  verdict::Score score;
};
Derived derive(const Result& r, std::chrono::system_clock::time_point now);
verdict::ScoreEvidence score_evidence(const Result& r, std::chrono::system_clock::time_point now);

// Appends the JSON Lines record (with a final newline). `with_transcript` adds "transcript".
void append_json(const Result& r, std::string& out, bool with_transcript = false);

// Reads a record written by append_json back (journal, cache). An error for anything that is
// not such a record.
core::Expected<Result, std::string> parse_json(std::string_view text);

// Appends iso8601(t) to out; a second's text is made once per thread and second.
void append_iso8601(std::string& out, std::chrono::system_clock::time_point t);
// Appends v as printf's "%.1f" would ("12.3").
void append_fixed1(std::string& out, double v);
// "2026-11-27T20:31:07Z"
std::string iso8601(std::chrono::system_clock::time_point t);
// The inverse of iso8601; nullopt unless exactly that form.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s);

}  // namespace mxp::pipeline
