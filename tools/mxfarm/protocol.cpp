// Command-line and path parsing for the farm's servers (see protocol.hpp).
#include "protocol.hpp"

namespace mxfarm {

namespace {

char lower_char(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower_char(a[i]) != lower_char(b[i])) return false;
  return true;
}

struct VerbName {
  std::string_view name;
  Cmd cmd;
};
constexpr VerbName kVerbs[] = {
    {"helo", Cmd::Helo}, {"ehlo", Cmd::Ehlo},         {"mail", Cmd::Mail}, {"rcpt", Cmd::Rcpt},
    {"data", Cmd::Data}, {"rset", Cmd::Rset},         {"noop", Cmd::Noop}, {"quit", Cmd::Quit},
    {"vrfy", Cmd::Vrfy}, {"starttls", Cmd::StartTls},
};

}  // namespace

Cmd parse_command(std::string_view line, std::string_view* arg) {
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  *arg = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  while (!arg->empty() && arg->front() == ' ')
    arg->remove_prefix(1);
  while (!arg->empty() && arg->back() == ' ')
    arg->remove_suffix(1);
  for (const auto& v : kVerbs)
    if (iequals(verb, v.name)) return v.cmd;
  return Cmd::Other;
}

bool parse_path_arg(std::string_view arg, std::string_view keyword, std::string_view* path) {
  if (arg.size() < keyword.size() || !iequals(arg.substr(0, keyword.size()), keyword)) return false;
  arg.remove_prefix(keyword.size());
  while (!arg.empty() && arg.front() == ' ')
    arg.remove_prefix(1);
  if (arg.empty()) return false;
  std::string_view p;
  if (arg.front() == '<') {
    size_t close = arg.find('>');
    if (close == std::string_view::npos) return false;
    p = arg.substr(1, close - 1);
    // Anything after '>' must be ESMTP parameters, separated by a space.
    if (close + 1 < arg.size() && arg[close + 1] != ' ') return false;
  } else {
    p = arg.substr(0, arg.find(' '));
  }
  if (!p.empty() && p.front() == '@') {  // source route: "@a,@b:user@d"
    size_t colon = p.find(':');
    if (colon == std::string_view::npos) return false;
    p.remove_prefix(colon + 1);
  }
  for (char c : p)
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>') return false;
  *path = p;
  return true;
}

bool split_mailbox(std::string_view addr, std::string_view* local, std::string_view* domain) {
  size_t at = addr.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == addr.size()) return false;
  *local = addr.substr(0, at);
  *domain = addr.substr(at + 1);
  return true;
}

std::string_view lower_into(std::string_view s, char* buf, size_t cap) {
  if (s.size() > cap) return {};
  for (size_t i = 0; i < s.size(); ++i)
    buf[i] = lower_char(s[i]);
  return {buf, s.size()};
}

}  // namespace mxfarm
