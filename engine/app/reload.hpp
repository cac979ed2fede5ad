// Signals as loop events (a signalfd watched by the engine's loop, so handlers run between
// events, never inside one): SIGHUP reloads the scheduling policy (--policy FILE and the
// command-line values) and the --deny / --allow lists without losing work; SIGINT/SIGTERM, when a
// stop handler is given, ask the command to stop cleanly.
#pragma once

#include <cstdio>
#include <functional>

#include "app/engine_options.hpp"
#include "pipeline/verifier.hpp"

namespace mxp::app {

class PolicyReloader final : private loop::FdHandler {
 public:
  // Blocks SIGHUP for the process and watches it; a bad file is reported and the old policy
  // stays. Without a signalfd (never on Linux), SIGHUP keeps its default action.
  // on_reload replaces the default SIGHUP action (re-read --policy and the command line).
  PolicyReloader(Engine& e, pipeline::Verifier& v, std::FILE* diag,
                 std::function<void(int signal)> on_stop = {},
                 std::function<void()> on_reload = {});
  ~PolicyReloader();
  PolicyReloader(const PolicyReloader&) = delete;
  PolicyReloader& operator=(const PolicyReloader&) = delete;

 private:
  void on_fd_ready(int fd, bool readable, bool writable) override;
  Engine& e_;
  pipeline::Verifier& v_;
  std::FILE* diag_;
  std::function<void(int)> on_stop_;
  std::function<void()> on_reload_;
  int fd_ = -1;
};

}  // namespace mxp::app
