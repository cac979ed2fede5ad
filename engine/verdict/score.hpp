// The record's `score`: the chance, 0-100, that mail to the address is delivered and not
// bounced, from the evidence the engine saw, with the factors that moved it. A documented table
// (docs/score.md), not a model: the score is the sum of the factors' effects, clamped to 0-100.
// Pure: evidence in, score out.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/verdict.hpp"

namespace mxp::verdict {

struct ScoreEvidence {
  Verdict verdict = Verdict::Unknown;
  Reason reason = Reason::ProtocolError;
  std::optional<bool> catch_all;  // the domain's catch-all probe: accepted, rejected, no answer
  std::optional<bool> role, disposable, free;
  bool tls = false;               // the deciding session ran STARTTLS
  bool greylist_cleared = false;  // a try was greylisted and a later one got the answer
  // Other MX hosts of the domain that judged the mailbox at RCPT too (the record's mx_tried):
  // how many said the same as the deciding answer, and how many said the opposite (one took the
  // address, another refused it as unknown or disabled).
  uint8_t mx_agreed = 0, mx_disagreed = 0;
  // How old the answer is when served from the results cache; nullopt for a fresh one.
  std::optional<std::chrono::seconds> age;
};

struct ScoreFactor {
  std::string_view factor;  // "accepted", "catch_all", "role", ... (docs/score.md)
  int effect = 0;
  bool operator==(const ScoreFactor&) const = default;
};

struct Score {
  int score = 0;                     // 0..100
  std::vector<ScoreFactor> factors;  // in the order of docs/score.md; their sum, clamped, is score
};

Score score(const ScoreEvidence& e);

// The score's factors as one CSV field: "accepted:90;catch_all:-35".
std::string factors_string(const std::vector<ScoreFactor>& factors);

}  // namespace mxp::verdict
