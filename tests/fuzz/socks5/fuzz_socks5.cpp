// libFuzzer target for the SOCKS5 client codec, fed a fuzzed proxy's bytes. The first byte picks
// the set-up (credentials or not; an IPv4, IPv6 or host-name target), the second how the bytes
// are cut into reads. The handshake must end the same however the bytes are cut (state, error,
// bound address, bytes we wrote, bytes that were the handshake's); states only move forward;
// a failure has its error, a success its bound address; no credentials are ever sent when none
// were given; and bytes after the CONNECT reply are left to the tunnel.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/socks5.hpp"

using namespace mxp::proxy;

namespace {

struct Run {
  Client::State state;
  Error error;
  std::string bound, written;
  size_t handshake = 0;  // bytes of the input that belonged to the handshake
};

Target target_of(uint8_t setup) {
  switch ((setup >> 1) % 3) {
    case 0:
      return Target::ip(*mxp::loop::Endpoint::parse("192.0.2.25", 25));
    case 1:
      return Target::ip(*mxp::loop::Endpoint::parse("2001:db8::25", 25));
    default:
      return Target::name("mx.example.org", 25);
  }
}

int rank(Client::State s) {
  return static_cast<int>(s);
}  // Greeting < Auth < Request < Done

// Feeds `wire` in reads of the sizes the seed gives (one read when seed is 0).
Run run(uint8_t setup, uint8_t seed, std::string_view wire) {
  const Credentials creds{"user", "secret"};
  Client c(target_of(setup), setup & 1 ? &creds : nullptr);
  Run r;
  auto drain = [&] {
    r.written.append(c.pending_output());
    c.consume_output(c.pending_output().size());
  };
  drain();
  const size_t total = wire.size();
  Client::State last = c.state();
  for (size_t i = 0; !wire.empty() && !c.done() && !c.failed(); ++i) {
    const size_t n =
        seed == 0 ? wire.size() : std::min<size_t>(wire.size(), 1 + ((seed >> (i % 8)) ^ i) % 9);
    const std::string_view chunk = wire.substr(0, n);
    const size_t used = c.feed(chunk);
    if (used > chunk.size()) abort();
    if (used < chunk.size() && !c.done() && !c.failed()) abort();  // bytes left, not finished
    if (c.failed() && used != chunk.size()) abort();
    wire.remove_prefix(used);
    if (c.done()) break;
    if (!c.failed() && rank(c.state()) < rank(last)) abort();  // states only move forward
    last = c.state();
    drain();
  }
  drain();
  r.handshake = c.failed() ? total : total - wire.size();  // after a failure: all of it
  r.state = c.state();
  r.error = c.error();
  r.bound = c.bound();
  if (c.failed() && c.error() == Error::None) abort();
  if (c.done() && (c.error() != Error::None || c.bound().empty() || !c.accepted())) abort();
  if (!(setup & 1) && r.written.find("secret") != std::string::npos) abort();
  c.on_closed();  // a close after the handshake changes nothing; before it, it fails it
  if (r.state == Client::State::Done ? !c.done() : !c.failed()) abort();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);
  const Run whole = run(data[0], 0, wire);
  const Run cut = run(data[0], data[1] | 1, wire);
  if (whole.state != cut.state || whole.error != cut.error || whole.bound != cut.bound ||
      whole.written != cut.written || whole.handshake != cut.handshake)
    abort();
  // The method selection comes first: VER 5 and the methods we offer.
  const std::string_view hello =
      data[0] & 1 ? std::string_view("\x05\x02\x00\x02", 4) : std::string_view("\x05\x01\x00", 3);
  if (whole.written.compare(0, hello.size(), hello) != 0) abort();
  return 0;
}
