// libFuzzer target for the address parser: whatever parse() accepts must be safe to put on the
// wire as one SMTP argument, within RFC 5321 limits, and its normal form must parse to itself.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "address/address.hpp"

using mxp::address::parse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!r.ok()) return 0;
  const auto& a = r.address;
  const std::string n = a.normalized();
  // Outside the quotes of a quoted local part there is no space at all.
  const size_t unquoted_from = a.quoted ? n.rfind("\"@") : 0;
  if (n.size() > mxp::address::kMaxPathOctets || (a.quoted && n.front() != '"')) abort();
  for (size_t i = 0; i < n.size(); ++i) {
    const auto c = static_cast<unsigned char>(n[i]);
    if (c < 0x20 || c == 0x7f || c == '<' || c == '>') abort();
    if (c == ' ' && i >= unquoted_from) abort();
  }
  for (char c : a.domain)  // A-labels only: lower-case LDH and dots
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) abort();
  const auto again = parse(n);
  if (!again.ok() || again.address.normalized() != n || again.address.role != a.role ||
      again.address.smtputf8 != a.smtputf8)
    abort();
  return 0;
}
