// Nanoseconds per classify() on real reply texts: the common accepted/unknown-user answers, the
// long multi-line Gmail/Office 365 diagnostics, and a mix. Replies are parsed before timing.
#include <benchmark/benchmark.h>

#include <string_view>
#include <vector>

#include "smtp/reply_parser.hpp"
#include "verdict/classify.hpp"

namespace {

using mxp::smtp::Outcome;
using mxp::smtp::Stage;

constexpr std::string_view kAccepted = "250 2.1.5 Ok\r\n";
constexpr std::string_view kPostfixUnknown =
    "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox "
    "table\r\n";
constexpr std::string_view kGmailUnknown =
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    "550-5.1.1 unnecessary spaces. Learn more at\r\n"
    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si1234567qkb.100 - gsmtp\r\n";
constexpr std::string_view kGmailUnsolicited =
    "421-4.7.0 [192.0.2.7      15] Our system has detected an unusual rate of\r\n"
    "421-4.7.0 unsolicited mail originating from your IP address. To protect our\r\n"
    "421-4.7.0 users from spam, mail sent from your IP address has been temporarily\r\n"
    "421-4.7.0 rate limited. Please visit\r\n"
    "421-4.7.0  https://support.google.com/mail/?p=UnsolicitedRateLimitError to\r\n"
    "421 4.7.0 review our Bulk Email Senders Guidelines. e5si1234567ejc.123 - gsmtp\r\n";
constexpr std::string_view kOutlookBlock =
    "550 5.7.1 Unfortunately, messages from [192.0.2.7] weren't sent. Please contact your Internet "
    "service provider since part of their network is on our block list (S3150). You can also "
    "refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
    "[AM1EUR02FT003.eop-EUR02.prod.protection.outlook.com]\r\n";
constexpr std::string_view kO365EdgeBlock =
    "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
    "[DM6NAM12FT052.eop-nam12.prod.protection.outlook.com 2023-09-18T12:48:32.808Z "
    "08DBB45899852BA7]\r\n";
constexpr std::string_view kPostgrey =
    "450 4.2.0 <someone@example.com>: Recipient address rejected: Greylisted, see "
    "http://postgrey.schweikert.ch/help/example.com.html\r\n";
constexpr std::string_view kTooMany = "452 4.5.3 Too many recipients\r\n";
constexpr std::string_view kYahooUnknown =
    "554 delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - "
    "mta1234.mail.gq1.yahoo.com\r\n";

Outcome rcpt(std::string_view wire) {
  Outcome o;
  o.stage = Stage::RcptTo;
  o.reply = *mxp::smtp::parse_reply(wire);
  return o;
}

void run_one(benchmark::State& state, std::string_view wire) {
  const Outcome o = rcpt(wire);
  for (auto _ : state) {
    auto c = mxp::verdict::classify(o);
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Accepted(benchmark::State& s) {
  run_one(s, kAccepted);
}
void BM_PostfixUnknown(benchmark::State& s) {
  run_one(s, kPostfixUnknown);
}
void BM_GmailUnknown4Lines(benchmark::State& s) {
  run_one(s, kGmailUnknown);
}
void BM_GmailUnsolicited6Lines(benchmark::State& s) {
  run_one(s, kGmailUnsolicited);
}
void BM_OutlookBlockList(benchmark::State& s) {
  run_one(s, kOutlookBlock);
}
void BM_O365EdgeBlock(benchmark::State& s) {
  run_one(s, kO365EdgeBlock);
}
void BM_Postgrey(benchmark::State& s) {
  run_one(s, kPostgrey);
}

void BM_Mix(benchmark::State& state) {
  std::vector<Outcome> mix;
  for (auto w : {kAccepted, kPostfixUnknown, kGmailUnknown, kGmailUnsolicited, kOutlookBlock,
                 kO365EdgeBlock, kPostgrey, kTooMany, kYahooUnknown})
    mix.push_back(rcpt(w));
  size_t i = 0;
  for (auto _ : state) {
    auto c = mxp::verdict::classify(mix[i]);
    benchmark::DoNotOptimize(c);
    if (++i == mix.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Accepted);
BENCHMARK(BM_PostfixUnknown);
BENCHMARK(BM_GmailUnknown4Lines);
BENCHMARK(BM_GmailUnsolicited6Lines);
BENCHMARK(BM_OutlookBlockList);
BENCHMARK(BM_O365EdgeBlock);
BENCHMARK(BM_Postgrey);
BENCHMARK(BM_Mix);

}  // namespace
