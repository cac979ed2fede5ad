// Allocation counting for tests that promise "no heap allocation on this path". Link
// count_allocations.cpp into the test binary: it replaces the global operator new for that binary.
#pragma once

namespace mxp::testing {

// operator new calls in this process so far.
long allocations();

}  // namespace mxp::testing
