#include "identity/identity.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

namespace mxp::identity {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool ldh_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// DNS gives names in the case their records have and sometimes with the root's dot; HELO names
// and comparisons use the plain lower-case form.
std::string plain_name(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return lower(s);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v)
    s += (s.empty() ? "" : ", ") + x;
  return s;
}

constexpr size_t kMaxNamesChecked = 4;  // PTR names looked up forward, per address

}  // namespace

bool is_fqdn(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  size_t labels = 0;
  std::string_view last;
  for (size_t start = 0;;) {
    const size_t dot = name.find('.', start);
    last = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!ldh_label(last)) return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (labels < 2) return false;
  if (std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  const std::string l = lower(name);
  return l != "localhost" && !l.ends_with(".localhost") && !l.starts_with("localhost.");
}

bool is_address_literal(std::string_view name) {
  if (name.size() < 3 || name.front() != '[' || name.back() != ']') return false;
  std::string inner(name.substr(1, name.size() - 2));
  unsigned char buf[16];
  if (lower(inner).starts_with("ipv6:")) return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
  return inet_pton(AF_INET, inner.c_str(), buf) == 1;
}

bool acceptable_helo(std::string_view name) {
  return is_fqdn(name) || is_address_literal(name);
}

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) return "localhost";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = AI_CANONNAME;
  addrinfo* res = nullptr;
  std::string name = host;
  if (getaddrinfo(host, nullptr, &hints, &res) == 0 && res) {
    if (res->ai_canonname && is_fqdn(res->ai_canonname) && !is_fqdn(name)) name = res->ai_canonname;
    freeaddrinfo(res);
  }
  return plain_name(name);
}

std::string_view to_string(PtrStatus s) {
  switch (s) {
    case PtrStatus::Confirmed:
      return "confirmed";
    case PtrStatus::NoPtr:
      return "no_ptr";
    case PtrStatus::NotConfirmed:
      return "not_confirmed";
    case PtrStatus::LookupFailed:
      break;
  }
  return "lookup_failed";
}

std::string_view to_string(HeloSource s) {
  switch (s) {
    case HeloSource::Option:
      return "option";
    case HeloSource::Ptr:
      return "ptr";
    case HeloSource::HostName:
      break;
  }
  return "host_name";
}

namespace {

// The lookups of one check_ptrs call, shared by its callbacks; the last one calls done.
struct Checks {
  dns::Resolver* resolver;
  std::vector<PtrCheck> checks;
  size_t pending = 0;  // addresses not finished
  PtrChecksDone done;

  struct Forward {
    size_t pending = 0;                // names whose addresses are awaited
    std::vector<int> matched;          // per name: 1 resolves back, 0 does not, -1 failed
    std::vector<std::string> answers;  // per name: its addresses, for the detail line
    std::string error;                 // a failed forward lookup's error
  };
  std::vector<Forward> forward;

  void finish_one() {
    if (--pending == 0) done(std::move(checks));
  }

  void on_ptr(const std::shared_ptr<Checks>& self, size_t i, const dns::RecordsAnswer& a) {
    PtrCheck& c = checks[i];
    const std::string ip = c.ip.ip_string();
    if (!a.answered) {
      c.status = PtrStatus::LookupFailed;
      c.detail = a.error;
      return finish_one();
    }
    for (const auto& n : a.names) {
      std::string p = plain_name(n);
      if (std::find(c.names.begin(), c.names.end(), p) == c.names.end())
        c.names.push_back(std::move(p));
    }
    if (c.names.empty()) {
      c.status = PtrStatus::NoPtr;
      c.detail = "no PTR record for " + ip + " (" + dns::Resolver::reverse_name(c.ip) + ")";
      return finish_one();
    }
    const size_t n = std::min(c.names.size(), kMaxNamesChecked);
    Forward& f = forward[i];
    f.pending = n;
    f.matched.assign(n, 0);
    f.answers.assign(n, "");
    for (size_t j = 0; j < n; ++j) {
      resolver->lookup_addresses(
          c.names[j], c.ip.family(),
          [self, i, j](const dns::RecordsAnswer& fa) { self->on_forward(i, j, fa); });
    }
  }

  void on_forward(size_t i, size_t j, const dns::RecordsAnswer& a) {
    PtrCheck& c = checks[i];
    Forward& f = forward[i];
    const std::string ip = c.ip.ip_string();
    if (!a.answered) {
      f.matched[j] = -1;
      f.error = a.error;
    } else {
      std::vector<std::string> addrs;
      for (const auto& ep : a.addresses) {
        addrs.push_back(ep.ip_string());
        if (addrs.back() == ip) f.matched[j] = 1;
      }
      f.answers[j] = addrs.empty() ? "none" : join(addrs);
    }
    if (--f.pending > 0) return;
    const char* rr = c.ip.family() == AF_INET6 ? "AAAA" : "A";
    for (size_t k = 0; k < f.matched.size(); ++k) {
      if (f.matched[k] == 1) {
        c.status = PtrStatus::Confirmed;
        c.confirmed = c.names[k];
        c.detail = ip + " has PTR " + c.names[k] + ", which resolves back to it";
        return finish_one();
      }
    }
    if (std::find(f.matched.begin(), f.matched.end(), -1) != f.matched.end()) {
      c.status = PtrStatus::LookupFailed;
      c.detail = f.error;
      return finish_one();
    }
    c.status = PtrStatus::NotConfirmed;
    std::string names;
    for (size_t k = 0; k < f.matched.size(); ++k)
      names += (k ? "; " : "") + c.names[k] + " (its " + rr + " records: " + f.answers[k] + ")";
    c.detail = "PTR of " + ip + " does not resolve back to it: " + names;
    finish_one();
  }
};

}  // namespace

void check_ptrs(dns::Resolver& resolver, const std::vector<loop::Endpoint>& ips,
                PtrChecksDone done) {
  if (ips.empty()) return done({});
  auto st = std::make_shared<Checks>();
  st->resolver = &resolver;
  st->done = std::move(done);
  st->pending = ips.size();
  st->forward.resize(ips.size());
  for (const auto& ip : ips)
    st->checks.push_back({ip, PtrStatus::LookupFailed, {}, {}, {}});
  for (size_t i = 0; i < ips.size(); ++i)
    resolver.lookup_ptr(ips[i], [st, i](const dns::RecordsAnswer& a) { st->on_ptr(st, i, a); });
}

std::vector<PtrCheck> check_ptrs_now(loop::Loop& loop, dns::Resolver& resolver,
                                     const std::vector<loop::Endpoint>& ips) {
  // Shared with the callback, which outlives this call if the loop ever returned early.
  struct Out {
    std::vector<PtrCheck> checks;
    bool finished = false, running = false;
  };
  auto out = std::make_shared<Out>();
  check_ptrs(resolver, ips, [out, &loop](std::vector<PtrCheck> v) {
    out->checks = std::move(v);
    out->finished = true;
    // stop() outside run() would make the job's first run() return at once.
    if (out->running) loop.stop();
  });
  if (!out->finished) {
    out->running = true;
    loop.run();
    out->running = false;
  }
  if (!out->finished) {
    // The loop ran out of work without an answer (it cannot with c-ares' timers armed): say so
    // rather than guess.
    std::vector<PtrCheck> failed;
    for (const auto& ip : ips)
      failed.push_back({ip, PtrStatus::LookupFailed, {}, {}, "dns: the lookup did not finish"});
    return failed;
  }
  return std::move(out->checks);
}

HeloChoice choose_helo(std::string_view option, const PtrCheck* ptr, std::string_view host) {
  HeloChoice c;
  if (!option.empty()) {
    c.name = std::string(option);
    c.source = HeloSource::Option;
    c.why = "--helo";
  } else if (ptr && ptr->status == PtrStatus::Confirmed && is_fqdn(ptr->confirmed)) {
    c.name = ptr->confirmed;
    c.source = HeloSource::Ptr;
    c.why = "PTR of " + ptr->ip.ip_string() + ", forward-confirmed";
  } else {
    c.name = host.empty() ? "localhost" : std::string(host);
    c.source = HeloSource::HostName;
    c.why = "this host's name";
    if (ptr && ptr->status == PtrStatus::Confirmed)
      c.why += ": the PTR name " + ptr->confirmed + " is not a fully-qualified name";
    else if (ptr)
      c.why += ": " + ptr->detail;
  }
  c.acceptable = acceptable_helo(c.name);
  return c;
}

std::string helo_warning(const HeloChoice& choice, std::string_view who) {
  if (choice.acceptable) return {};
  std::string w = "warning: HELO name '" + choice.name + "' for " + std::string(who) +
                  " is not a fully-qualified domain name (" + choice.why +
                  "); servers that check it (Postfix reject_non_fqdn_helo_hostname) will refuse "
                  "us: give --helo NAME";
  if (choice.source != HeloSource::Option) w += " or a forward-confirmed PTR record";
  return w + " (docs/identity.md)";
}

}  // namespace mxp::identity
