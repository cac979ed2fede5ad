// Typo suggestions for the big mail providers' domains: "gmial.com" -> "gmail.com". A small
// fixed table of the domains most addresses go to, and the optimal-string-alignment
// (Damerau-Levenshtein with adjacent transpositions) distance with guards that keep real domains
// alone. The rules, with examples, are in docs/verdicts.md ("Typo suggestion").
#pragma once

#include <span>
#include <string_view>

namespace mxp::flags {

class DomainData;

// The providers' domains suggestions point to, most used first (ties go to the earlier one).
std::span<const std::string_view> typo_targets();

// Optimal string alignment distance of a and b, or `cap` + 1 when it is larger than `cap`.
int osa_distance(std::string_view a, std::string_view b, int cap);

// A suggested domain for `domain` (lower case, no trailing dot), or "" when none. With `data`,
// a domain the free list names and the disposable list does not is a real provider of its own
// and is never corrected ("ymail.com", "mail.com"); typo domains registered to catch misdirected
// mail ("gmial.com") are on the disposable list and still get their suggestion. The targets
// themselves are never corrected.
std::string_view suggest_domain(std::string_view domain, const DomainData* data);

}  // namespace mxp::flags
