// Checks parse()'s allocation promise: for ASCII input the only heap allocations are the
// local and domain strings themselves (none when both fit the small-string buffer).
// Counts every operator new in this test binary through a replaced global operator new.
#include "address/address.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

namespace {
long g_allocations = 0;
}  // namespace

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace mxp::address {
namespace {

long allocations_of(std::string_view input, bool* ok) {
  long before = g_allocations;
  ParseResult r = parse(input);
  long after = g_allocations;
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
