// Replaces the global operator new/delete of the test binary it is linked into, counting calls.
#include "count_allocations.hpp"

#include <cstdlib>
#include <new>

namespace {
long g_allocations = 0;
}  // namespace

long mxp::testing::allocations() {
  return g_allocations;
}

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
