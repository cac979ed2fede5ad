// The Dispatch seam: where a job's addresses go to be verified. By default the runner submits
// them to the node's own verifier (pipeline::Verifier); a cluster node's job hands them to the
// cluster instead (job/cluster_dispatch.hpp), which sends them to whichever node claims them and
// hands each result back through Runner::deliver, as the verifier does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "address/address.hpp"

namespace mxp::app {

class Dispatch {
 public:
  virtual ~Dispatch() = default;
  // One address to verify; its result comes back through the runner's deliver() with the same
  // id, once.
  virtual void submit(uint64_t id, uint64_t line, std::string email, address::Address a) = 0;
  // Takes back the addresses with ids in [lo, hi) that no one works on yet (appended to `out`):
  // a pause. Those already on their way finish and are delivered.
  virtual size_t withdraw(uint64_t lo, uint64_t hi, std::vector<uint64_t>& out) = 0;
  // How many addresses the runner should keep in flight: reading stops there.
  virtual uint64_t appetite() const = 0;
};

}  // namespace mxp::app
