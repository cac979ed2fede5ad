// A job's webhook on the engine's loop: makes the batches that are due, sends the deliveries
// one at a time in order (HTTP/1.1 POST, signed, a connection each; inside TLS with the server's
// certificate verified for an https:// URL), and keeps each attempt's outcome in the job's
// journal (store.hpp) before the next. A 2xx answer is the acknowledgement; anything else
// (refused, reset, a certificate that does not verify, no answer in time, another status, a
// redirect included: none is followed) is tried again by the retry schedule (webhook.hpp).
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/client.hpp"
#include "loop/loop.hpp"
#include "tls/client.hpp"
#include "webhook/exchange.hpp"
#include "webhook/store.hpp"
#include "webhook/webhook.hpp"

namespace mxp::dns {
class Resolver;
}

namespace mxp::webhook {

struct SenderOptions {
  RetryPolicy retry;
  // From connecting to the answer's end; past it the attempt failed.
  std::chrono::milliseconds attempt_timeout{10'000};
  std::string user_agent = "mxprobe";
  // For https:// URLs: a context that verifies the peer (verify_peer), shared by every sender of
  // the process so that its session tickets resume the next connection to the same endpoint.
  // Null: https:// deliveries fail.
  std::shared_ptr<const tls::ClientContext> tls;
  // A line for the operator's log ("job 3 webhook 3-2: HTTP 500; next try in 2 s").
  std::function<void(const std::string&)> log;
};

class Sender final : private loop::ConnHandler {
 public:
  // `resolver` finds the addresses of a host name (an IP address or "localhost" needs none;
  // null: names are not resolved and their deliveries fail).
  Sender(loop::Loop& loop, dns::Resolver* resolver, std::unique_ptr<Store> store, Config config,
         uint64_t job, SenderOptions options);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Called often (the service's tick): makes the batches that are due, starts the next
  // delivery whose time has come, and ends an attempt that ran out of time.
  void poll();
  // The job ended: its last batch and the end event (with `summary_json`) are made now.
  void job_ended(const std::string& summary_json);

  const Config& config() const { return config_; }
  // The journal, for reading the delivery log: opened again if it was let go (settled).
  Expected<Store*> store();
  // The deliveries' totals; those of the end once every delivery is settled.
  Expected<Totals> totals();
  // The job ended and every delivery was acknowledged or failed: nothing more will happen, and
  // the journal's connection is let go (a server keeps many ended jobs).
  bool settled() const { return settled_; }
  // The attempt under way: its delivery's seq (0: none).
  int64_t sending() const { return current_ ? current_->seq : 0; }
  // The job's last deliveries (at most kRecent, newest first) as the journal has them. They are
  // kept here so that the job's `webhook` object, built for every snapshot, reads no journal:
  // read from it when the sender starts (a restart included) and when deliveries are made, and
  // updated in place by each attempt's outcome once the journal has it.
  static constexpr size_t kRecent = 8;
  const std::vector<Delivery>& recent() const { return recent_; }
  // The last store error (said once in the log), empty if none.
  const std::string& store_error() const { return store_error_; }

 private:
  void start(const Delivery& d);
  void lookup(uint64_t attempt, int family);
  void resolved(const std::vector<loop::Endpoint>& addrs, const std::string& err);
  void finish(int status, std::string error);
  void flush();
  void check_finished();
  void on_connect(loop::ConnId id, loop::Status status) override;
  void on_data(loop::ConnId id, std::string_view bytes) override;
  void on_closed(loop::ConnId id, loop::Status status) override;
  void store_failed(const std::string& what);
  // Writes the last attempt's outcome to the journal; false (and kept for the next poll) when
  // the journal refuses for now (e.g. locked past its busy timeout by the job's writer).
  bool record_outcome();
  void settle();
  void load_recent();
  static Millis unix_now();

  loop::Loop& loop_;
  dns::Resolver* resolver_;
  std::unique_ptr<Store> store_;
  Config config_;
  http::ClientUrl url_;
  uint64_t job_;
  SenderOptions o_;
  std::optional<Delivery> current_;
  uint64_t attempt_ = 0;  // attempts started by this sender
  std::string request_;   // the attempt's request until its exchange is made (resolved())
  std::unique_ptr<Exchange> exchange_;
  loop::ConnId conn_{};
  bool connected_ = false;  // the attempt's connection is up (its TLS handshake may not be)
  core::TimePoint deadline_{};
  // When unbatched records were first seen (for webhook_interval); empty: none waiting.
  std::optional<core::TimePoint> waiting_since_;
  // An attempt's outcome not yet in the journal. Nothing else is sent until it is: a delivery
  // acknowledged but not recorded would otherwise go again.
  struct Outcome {
    int64_t seq;
    Millis at;
    int status;
    std::string error;
    bool acked;
    Millis next_try;
  };
  std::optional<Outcome> unrecorded_;
  std::string store_error_;
  std::string path_;
  bool settled_ = false;
  Totals final_totals_;
  std::vector<Delivery> recent_;
  // Callbacks that may come after this sender is gone (the resolver's) check this first.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mxp::webhook
