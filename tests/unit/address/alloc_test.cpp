// Checks parse()'s allocation promise: for ASCII input the only heap allocations are the
// local and domain strings themselves (none when both fit the small-string buffer).
// Counts every operator new in this test binary through a replaced global operator new.
#include "address/address.hpp"

#include <gtest/gtest.h>

#include "count_allocations.hpp"

namespace mxp::address {
namespace {

long allocations_of(std::string_view input, bool* ok) {
  long before = mxp::testing::allocations();
  ParseResult r = parse(input);
  long after = mxp::testing::allocations();
  *ok = r.ok();
  return after - before;
}

TEST(AddressAlloc, ShortAsciiAddressAllocatesNothing) {
  bool ok = false;
  EXPECT_EQ(allocations_of("User+tag@Example.com", &ok), 0);
  EXPECT_TRUE(ok);
  EXPECT_EQ(allocations_of("  info@example.org ", &ok), 0);
  EXPECT_TRUE(ok);
  EXPECT_EQ(allocations_of("a b@example.com", &ok), 0);  // refused early: nothing kept
  EXPECT_FALSE(ok);
}

TEST(AddressAlloc, LongAsciiAddressAllocatesOnlyItsTwoStrings) {
  bool ok = false;
  EXPECT_EQ(allocations_of("firstname.lastname@mail.example-company.com", &ok), 2);
  EXPECT_TRUE(ok);
  EXPECT_EQ(allocations_of("firstname.lastname@example.com", &ok), 1);
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace mxp::address
