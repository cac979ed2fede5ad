// The score table (verdict/score.hpp, docs/score.md): evidence -> score ranges, the factors
// named, and monotonicity: more evidence that the mailbox exists never lowers the score.
#include "verdict/score.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace mxp::verdict {
namespace {

using std::chrono::days;

ScoreEvidence ev(Verdict v, Reason r) {
  ScoreEvidence e;
  e.verdict = v;
  e.reason = r;
  e.role = false;
  e.disposable = false;
  e.free = false;
  return e;
}

int effect(const Score& s, std::string_view factor) {
  for (const auto& f : s.factors)
    if (f.factor == factor) return f.effect;
  return 0;
}

TEST(Score, Table) {
  struct Case {
    const char* what;
    ScoreEvidence e;
    int lo, hi;
  };
  auto accepted = ev(Verdict::Deliverable, Reason::Accepted);
  auto probed = accepted;
  probed.catch_all = false;
  auto probed_tls = probed;
  probed_tls.tls = true;
  auto catch_all = ev(Verdict::Risky, Reason::CatchAll);
  catch_all.catch_all = true;
  auto yahoo = ev(Verdict::Risky, Reason::Unverifiable);
  auto role = probed;
  role.role = true;
  auto disposable = probed;
  disposable.disposable = true;
  auto old = probed;
  old.age = days(400);
  auto agreed = probed;
  agreed.mx_agreed = 1;
  auto disagreed = probed;
  disagreed.mx_disagreed = 1;
  auto old_reject = ev(Verdict::Undeliverable, Reason::MailboxNotFound);
  old_reject.age = days(400);
  const std::vector<Case> cases = {
      {"accepted, probe rejected", probed, 93, 97},
      {"accepted, probe rejected, STARTTLS", probed_tls, 95, 99},
      {"accepted, not probed", accepted, 83, 87},
      {"catch-all", catch_all, 50, 60},
      {"Yahoo accepts all", yahoo, 45, 55},
      {"role account", role, 80, 90},
      {"disposable", disposable, 60, 70},
      {"a year-old cached accept", old, 70, 76},
      {"accepted, another MX accepted it too", agreed, 96, 100},
      {"accepted, another MX refused the mailbox", disagreed, 70, 80},
      {"mailbox full", ev(Verdict::Risky, Reason::MailboxFull), 25, 35},
      {"greylisted, never cleared", ev(Verdict::Unknown, Reason::Greylisted), 45, 55},
      {"timeout", ev(Verdict::Unknown, Reason::Timeout), 35, 45},
      {"connection failed", ev(Verdict::Unknown, Reason::ConnectionFailed), 25, 35},
      {"mailbox not found", ev(Verdict::Undeliverable, Reason::MailboxNotFound), 0, 5},
      {"a year-old cached rejection", old_reject, 0, 5},
      {"no such domain", ev(Verdict::Undeliverable, Reason::NoSuchDomain), 0, 0},
      {"invalid syntax", ev(Verdict::Undeliverable, Reason::InvalidSyntax), 0, 0},
      {"null MX", ev(Verdict::Undeliverable, Reason::NullMx), 0, 0},
  };
  for (const auto& c : cases) {
    const Score s = score(c.e);
    EXPECT_GE(s.score, c.lo) << c.what << ": " << factors_string(s.factors);
    EXPECT_LE(s.score, c.hi) << c.what << ": " << factors_string(s.factors);
  }
}

// The score is the clamped sum of its factors, and the factors name the evidence.
TEST(Score, FactorsExplainTheScore) {
  auto e = ev(Verdict::Risky, Reason::CatchAll);
  e.catch_all = true;
  e.role = true;
  const Score s = score(e);
  EXPECT_EQ(factors_string(s.factors), "accepted:90;catch_all:-35;role:-10");
  EXPECT_EQ(s.score, 45);
  auto y = score(ev(Verdict::Risky, Reason::Unverifiable));
  EXPECT_EQ(effect(y, "provider_accepts_all"), -40);
  auto full = score(ev(Verdict::Risky, Reason::MailboxFull));
  EXPECT_EQ(factors_string(full.factors), "mailbox_full:30");
  // Free webmail is not evidence either way: no factor.
  auto f = ev(Verdict::Deliverable, Reason::Accepted);
  f.free = true;
  EXPECT_EQ(effect(score(f), "free"), 0);
  // A rejection: STARTTLS and the like say nothing; role and disposable take it to 0.
  auto nf = ev(Verdict::Undeliverable, Reason::MailboxNotFound);
  nf.tls = true;
  EXPECT_EQ(factors_string(score(nf).factors), "mailbox_not_found:2");
  nf.role = true;
  EXPECT_EQ(score(nf).score, 0);
  // Every reason has a base within 0..100.
  for (int r = 0; r < kReasonCount; ++r) {
    const Score b = score(ev(Verdict::Unknown, static_cast<Reason>(r)));
    ASSERT_FALSE(b.factors.empty());
    EXPECT_GE(b.factors.front().effect, 0);
    EXPECT_LE(b.factors.front().effect, 100);
  }
}

TEST(Score, OlderAnswersScoreLower) {
  auto e = ev(Verdict::Deliverable, Reason::Accepted);
  e.catch_all = false;
  int last = score(e).score;
  for (int d : {0, 6, 7, 30, 90, 180, 365, 2000}) {
    e.age = days(d);
    const int s = score(e).score;
    EXPECT_LE(s, last) << d << " days";
    last = s;
  }
  EXPECT_EQ(effect(score(e), "cache_age"), -22);
  e.age = days(3);
  EXPECT_EQ(effect(score(e), "cache_age"), 0);
}

// Monotonicity: over every combination of the other evidence, a step towards "the mailbox
// exists" never lowers the score.
TEST(Score, MoreEvidenceOfExistenceNeverLowersTheScore) {
  // Reasons from the weakest evidence of a mailbox to the strongest.
  const std::vector<std::pair<Verdict, Reason>> ladder = {
      {Verdict::Undeliverable, Reason::NoSuchDomain},
      {Verdict::Undeliverable, Reason::NoMailServer},
      {Verdict::Undeliverable, Reason::MailboxNotFound},
      {Verdict::Unknown, Reason::ConnectionFailed},
      {Verdict::Unknown, Reason::Timeout},
      {Verdict::Unknown, Reason::RateLimited},
      {Verdict::Unknown, Reason::Greylisted},
      {Verdict::Risky, Reason::Unverifiable},
      {Verdict::Risky, Reason::CatchAll},
      {Verdict::Deliverable, Reason::Accepted},
  };
  const std::optional<bool> catch_alls[] = {true, std::nullopt, false};  // weakest first
  const std::optional<std::chrono::seconds> ages[] = {days(400), days(100), days(10),
                                                      std::nullopt};  // oldest first
  // Other MX hosts: one refused the mailbox, none judged, one accepted it too (weakest first).
  const std::pair<uint8_t, uint8_t> others[] = {{0, 1}, {0, 0}, {1, 0}};
  for (size_t li = 0; li < ladder.size(); ++li)
    for (int ci = 0; ci < 3; ++ci)
      for (int ai = 0; ai < 4; ++ai)
        for (int oi = 0; oi < 3; ++oi)
          for (int bits = 0; bits < 16; ++bits) {
            ScoreEvidence e = ev(ladder[li].first, ladder[li].second);
            e.catch_all = catch_alls[ci];
            e.age = ages[ai];
            e.mx_agreed = others[oi].first;
            e.mx_disagreed = others[oi].second;
            e.tls = bits & 1;
            e.greylist_cleared = bits & 2;
            e.role = !(bits & 4);
            e.disposable = !(bits & 8);
            const int s = score(e).score;
            auto stronger = [&](ScoreEvidence m, const char* what) {
              EXPECT_GE(score(m).score, s) << what << " from " << factors_string(score(e).factors);
            };
            if (li + 1 < ladder.size()) {
              auto m = e;
              m.verdict = ladder[li + 1].first;
              m.reason = ladder[li + 1].second;
              stronger(m, "a stronger reason");
            }
            if (ci < 2) {
              auto m = e;
              m.catch_all = catch_alls[ci + 1];
              stronger(m, "the probe rejected");
            }
            if (ai < 3) {
              auto m = e;
              m.age = ages[ai + 1];
              stronger(m, "a fresher answer");
            }
            if (oi < 2) {
              auto m = e;
              m.mx_agreed = others[oi + 1].first;
              m.mx_disagreed = others[oi + 1].second;
              stronger(m, "another MX on the side of the mailbox");
            }
            for (int b : {1, 2, 4, 8}) {
              if (bits & b) continue;
              auto m = e;
              if (b == 1) m.tls = true;
              if (b == 2) m.greylist_cleared = true;
              if (b == 4) m.role = false;
              if (b == 8) m.disposable = false;
              stronger(m, "one more piece of evidence");
            }
            EXPECT_GE(s, 0);
            EXPECT_LE(s, 100);
          }
}

}  // namespace
}  // namespace mxp::verdict
