// `mxprobe serve`: the WebSocket: hello, history and snapshot on open, and its commands
// (docs/protocol.md).
#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {

void Service::on_open(server::WsClient& c) {
  ws_[c.id()] = &c;
  c.send_text(json{{"type", "hello"}, {"version", kProtocolVersion}, {"server", "mxprobe"}}.dump());
  // The recent events first, oldest first (`history: true`): a console opened now sees what
  // happened before it.
  for (const auto& ev : event_history_)
    c.send_text(ev);
  c.send_latest(snapshot().dump());
}

// A command that throws (a bug) answers an error ack; it never takes the server down.
void Service::on_message(server::WsClient& c, const http::WsMessage& m) {
  try {
    command(c, m);
  } catch (const std::exception& e) {
    c.send_text(json{{"type", "ack"}, {"id", nullptr}, {"ok", false}, {"error", e.what()}}.dump());
  }
}

// One ack per command: `ok`, or `error`, with the command's `data` when it has some.
void Service::WsAck::operator()(const json& id, bool ok, std::string_view err, json extra) const {
  json a = {{"type", "ack"}, {"id", id}, {"ok", ok}};
  if (!ok) a["error"] = err;
  if (!extra.is_null()) a["data"] = extra;
  c.send_text(a.dump());
}

// The commands, in the order the help lists them: each one's name, handler and help.
const std::vector<Service::WsCommand>& Service::ws_commands() {
  static const std::vector<WsCommand> kCommands = {
      {"ping", &Service::ws_ping, "answers ok"},
      {"check", &Service::ws_check, "verifies `email`: a result, its SMTP dialogue live"},
      {"probe", &Service::ws_probe, "probe-server against `target` (docs/probe.md)"},
      {"set_group_policy", &Service::ws_set_group_policy,
       "changes `set` {key: value} of MX `group` live"},
      {"pause", &Service::ws_job_action, "pauses `job`"},
      {"resume", &Service::ws_job_action, "resumes `job`"},
      {"cancel", &Service::ws_job_action, "cancels `job`"},
      {"delete", &Service::ws_delete, "deletes an ended `job` and its files"},
  };
  return kCommands;
}

std::string Service::ws_command_names() {
  std::string names;
  for (const auto& c : ws_commands())
    names += (names.empty() ? "" : ", ") + std::string(c.name);
  return names;
}

json Service::ws_help() {
  json help = json::object();
  for (const auto& c : ws_commands())
    help[std::string(c.name)] = c.help;
  return help;
}

// The error for a request without a string `cmd` (cmd == nullptr) or with an unknown one.
std::string Service::ws_command_error(const std::string* cmd) {
  if (!cmd) return "cmd: a string (" + ws_command_names() + ")";
  return "unknown command: " + *cmd + " (" + ws_command_names() + ")";
}

void Service::command(server::WsClient& c, const http::WsMessage& m) {
  // Bounded before any tree is built: copying or dumping a deeply nested "id" would recurse.
  auto parsed = ::mxp::json::parse_bounded<json>(m.data, ::mxp::json::kCommandLimits);
  const WsAck ack{c};
  if (!parsed) return ack(nullptr, false, parsed.error());
  json& req = *parsed;
  if (!req.is_object()) return ack(nullptr, false, "not a JSON object");
  json id = req.contains("id") ? req["id"] : json();
  if (!req.contains("cmd") || !req["cmd"].is_string())
    return ack(id, false, ws_command_error(nullptr));
  const std::string cmd = req["cmd"].get<std::string>();
  for (const auto& w : ws_commands())
    if (cmd == w.name) return (this->*w.handler)(c, req, id, cmd, ack);
  ack(id, false, ws_command_error(&cmd), ws_help());
}

void Service::ws_ping(server::WsClient&, const json&, const json& id, const std::string&,
                      const WsAck& ack) {
  ack(id, true);
}

void Service::ws_probe(server::WsClient& c, const json& req, const json& id, const std::string&,
                       const WsAck& ack) {
  ProbeOptions po;
  std::string err;
  if (!probe_options(req, po, err)) return ack(id, false, err);
  if (probes_.size() >= kMaxProbes)
    return ack(id, false, "two probes are running already: wait for one to end");
  ack(id, true);
  return start_probe(c.id(), id, std::move(po));
}

void Service::ws_check(server::WsClient& c, const json& req, const json& id, const std::string&,
                       const WsAck& ack) {
  if (!req.contains("email") || !req["email"].is_string())
    return ack(id, false, "check needs an email");
  ack(id, true);
  Waiter w;
  w.ws_client = c.id();
  w.transcript = true;
  w.ws_request_id = id;
  return check(req["email"].get<std::string>(), std::move(w));
}

void Service::ws_set_group_policy(server::WsClient&, const json& req, const json& id,
                                  const std::string&, const WsAck& ack) {
  std::string group =
      req.contains("group") && req["group"].is_string() ? req["group"].get<std::string>() : "";
  if (group.empty() || !req.contains("set") || !req["set"].is_object())
    return ack(id, false, "set_group_policy needs group and set {key: value}");
  if (!live_groups_.count(group) && live_groups_.size() >= kMaxLiveGroups)
    return ack(id, false,
               "at most " + std::to_string(kMaxLiveGroups) +
                   " groups may have live changes: put lasting ones in the policy file");
  auto groups = live_groups_;
  for (const auto& [k, v] : req["set"].items()) {
    if (!live_key(k) || !v.is_number()) return ack(id, false, "unknown or non-numeric key: " + k);
    groups[group][k] = v;
  }
  std::string err;
  if (!apply_overrides(overrides_, groups, err)) return ack(id, false, err);
  return ack(id, true, {}, policy_json()["live_groups"]);
}

void Service::ws_delete(server::WsClient&, const json& req, const json& id, const std::string&,
                        const WsAck& ack) {
  if (!req.contains("job") || !req["job"].is_number_unsigned())
    return ack(id, false, "delete needs job: a job id (a number)");
  std::string err;
  if (!job_delete(req["job"].get<uint64_t>(), err)) return ack(id, false, err);
  return ack(id, true);
}

// pause, resume, cancel.
void Service::ws_job_action(server::WsClient&, const json& req, const json& id,
                            const std::string& cmd, const WsAck& ack) {
  if (!req.contains("job") || !req["job"].is_number_unsigned())
    return ack(id, false, cmd + " needs job: a job id (a number)");
  const uint64_t job = req["job"].get<uint64_t>();
  std::string err;
  if (!job_action(job, cmd, err)) return ack(id, false, err);
  return ack(id, true, {}, job_json(*jobs_.at(job)));
}

}  // namespace mxp::app::serve_impl
