#include "app/reload.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace mxp::app {

PolicyReloader::PolicyReloader(Engine& e, pipeline::Verifier& v, std::FILE* diag,
                               std::function<void(int)> on_stop, std::function<void()> on_reload)
    : e_(e), v_(v), diag_(diag), on_stop_(std::move(on_stop)), on_reload_(std::move(on_reload)) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  if (on_stop_) {
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
  }
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return;
  if (e_.loop->watch_fd(fd, true, false, *this) != loop::Status::Ok) {
    close(fd);
    return;
  }
  sigprocmask(SIG_BLOCK, &set, nullptr);
  fd_ = fd;
}

PolicyReloader::~PolicyReloader() {
  if (fd_ < 0) return;
  e_.loop->unwatch_fd(fd_);
  close(fd_);
  // Default actions again (the process is about to exit; a second Ctrl-C should work).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (on_stop_) sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

void PolicyReloader::on_fd_ready(int fd, bool, bool) {
  signalfd_siginfo info;
  bool hup = false;
  int stop = 0;
  while (read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo == SIGHUP)
      hup = true;
    else
      stop = static_cast<int>(info.ssi_signo);
  }
  if (stop && on_stop_) on_stop_(stop);
  if (!hup) return;
  if (on_reload_) return on_reload_();
  reload_lists(e_.options, v_, diag_);
  auto policy = load_engine_policy(e_.options);
  if (!policy) {
    std::fprintf(diag_, "mxprobe: SIGHUP: %s; keeping the policy in force\n",
                 policy.error().c_str());
    return;
  }
  if (const std::string why = check_source_pools(**policy, v_.config()); !why.empty()) {
    std::fprintf(diag_, "mxprobe: SIGHUP: %s; keeping the policy in force\n", why.c_str());
    return;
  }
  v_.set_policy(std::move(policy).value());
  std::fprintf(diag_, "mxprobe: SIGHUP: policy reloaded%s%s\n",
               e_.options.policy_file.empty() ? "" : " from ", e_.options.policy_file.c_str());
}

}  // namespace mxp::app
