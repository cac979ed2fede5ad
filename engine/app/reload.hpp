// SIGHUP reloads the scheduling policy (--policy FILE and the command-line values) without
// losing work: a signalfd watched by the engine's loop, so the reload runs between events.
#pragma once

#include <cstdio>

#include "app/engine_options.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::app {

class PolicyReloader final : private loop::FdHandler {
 public:
  // Blocks SIGHUP for the process and watches it; a bad file is reported and the old policy
  // stays. Without a signalfd (never on Linux), SIGHUP keeps its default action.
  PolicyReloader(Engine& e, pipeline::Verifier& v, std::FILE* diag);
  ~PolicyReloader();
  PolicyReloader(const PolicyReloader&) = delete;
  PolicyReloader& operator=(const PolicyReloader&) = delete;

 private:
  void on_fd_ready(int fd, bool readable, bool writable) override;
  Engine& e_;
  pipeline::Verifier& v_;
  std::FILE* diag_;
  int fd_ = -1;
};

}  // namespace mxp::app
