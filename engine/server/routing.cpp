// Routing: the route tables (exact paths, then the longest '*' prefix; 405 with Allow for a
// path known with another method), streamed request bodies handed to their sink, and
// handle_request, which applies the access checks of access.cpp in order (Host, WebSocket
// upgrade, Origin, token, cross-site writes) before a handler, a static file or 404 answers.
#include "server/conn.hpp"

#include <algorithm>

namespace mxp::server {

namespace {

constexpr std::string_view kSubprotocol = "mxprobe.v1";

}  // namespace

using detail::Answer;
using detail::Conn;

void HttpServer::route(std::string method, std::string path, Handler h) {
  if (!path.empty() && path.back() == '*') {
    path.pop_back();
    prefix_[path].push_back(Route{std::move(method), std::move(h), nullptr});
  } else {
    exact_[path].push_back(Route{std::move(method), std::move(h), nullptr});
  }
}

void HttpServer::route_streamed(std::string method, std::string path, StreamHandler h) {
  exact_[std::move(path)].push_back(Route{std::move(method), nullptr, std::move(h)});
}

bool HttpServer::streamed(const http::Request& req) const {
  const auto e = exact_.find(req.path);
  if (e == exact_.end()) return false;
  return std::any_of(e->second.begin(), e->second.end(),
                     [&](const Route& r) { return r.stream && r.method == req.method; });
}

// Hands what arrived of a streamed body to its sink, and its end or failure.
void HttpServer::pump_body(Conn& c) {
  using Body = http::ServerConnection::Body;
  const Body state = c.codec.body_state();
  if (state == Body::none) return;
  const std::string bytes = c.codec.take_body();
  if (c.sink && !bytes.empty() && !c.sink->on_body(bytes)) c.sink.reset();  // it answered
  if (state == Body::arriving) return;
  if (auto sink = std::move(c.sink)) {
    if (state == Body::ended)
      sink->on_body_end();
    else
      sink->on_body_error();
  }
  c.codec.body_taken(loop_.now());
}

// The connection ends with a body half-read: its sink hears so.
void HttpServer::drop_body(Conn& c) {
  if (auto sink = std::move(c.sink)) sink->on_body_error();
}

void HttpServer::websocket(std::string path, WsHandler& h) {
  ws_paths_[std::move(path)] = &h;
}

void HttpServer::handle_request(const std::shared_ptr<Conn>& c, http::Request req) {
  const uint64_t seq = c->next_seq++;
  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  const auto unauthorized = [&] {
    http::Response r = json_error(401, "unauthorized", "missing or wrong bearer token");
    r.headers.push_back({"WWW-Authenticate", "Bearer"});
    answer(*c, seq, std::move(r));
  };
  const auto refuse = [&](int status, std::string_view code, std::string_view message) {
    ++stats_.cross_site;
    answer(*c, seq, json_error(status, code, message));
  };
  if (!host_allowed(req))
    return refuse(421, "misdirected",
                  "Host must name this server (a loopback address or localhost): DNS rebinding "
                  "protection");
  const auto cross_origin = [&] {
    refuse(403, "cross_origin",
           "Origin does not match Host: the API only answers pages this server serves");
  };

  if (const auto ws = ws_paths_.find(path); ws != ws_paths_.end()) {
    if (!req.upgrade) {
      if (!authorized(req)) return unauthorized();
      http::Response r = json_error(426, "upgrade_required", "this is a WebSocket endpoint");
      r.headers.push_back({"Upgrade", "websocket"});
      return answer(*c, seq, std::move(r));
    }
    if (!origin_allowed(req)) return cross_origin();
    if (!ws_authorized(req)) return unauthorized();
    const auto offered = http::ServerConnection::offered_subprotocols(req);
    std::string proto;
    if (!offered.empty()) {
      if (std::find(offered.begin(), offered.end(), kSubprotocol) == offered.end())
        return answer(*c, seq,
                      json_error(400, "unsupported_subprotocol",
                                 "offer the WebSocket subprotocol " + std::string(kSubprotocol)));
      proto = kSubprotocol;
    }
    Answer& a = c->answers[seq];
    a.kind = Answer::Kind::ws_accept;
    a.ws_request = std::move(req);
    a.ws_protocol = std::move(proto);
    a.ws_handler = ws->second;
    return;
  }

  const std::vector<Route>* routes = nullptr;
  if (const auto e = exact_.find(path); e != exact_.end()) {
    routes = &e->second;
  } else {
    size_t best = 0;
    for (const auto& [prefix, list] : prefix_) {
      if (path.compare(0, prefix.size(), prefix) == 0 && (!routes || prefix.size() > best)) {
        routes = &list;
        best = prefix.size();
      }
    }
  }
  const bool healthz = path == "/healthz" && get;
  if (routes == nullptr && healthz)
    return answer(*c, seq, http::Response::json(200, "{\"status\":\"ok\"}"));

  if (routes != nullptr) {
    if (!healthz && !origin_allowed(req)) return cross_origin();
    if (!healthz && !authorized(req)) return unauthorized();
    const Route* match = nullptr;
    for (const auto& r : *routes)
      if (r.method == req.method) match = &r;
    if (match == nullptr && req.method == "HEAD")
      for (const auto& r : *routes)
        if (r.method == "GET") match = &r;
    if (match == nullptr) {
      std::vector<std::string> allow;
      for (const auto& r : *routes) {
        allow.push_back(r.method);
        if (r.method == "GET") allow.push_back("HEAD");
      }
      std::sort(allow.begin(), allow.end());
      allow.erase(std::unique(allow.begin(), allow.end()), allow.end());
      std::string allow_text;
      for (const auto& m : allow)
        allow_text += (allow_text.empty() ? "" : ", ") + m;
      http::Response r =
          json_error(405, "method_not_allowed",
                     req.method + " is not allowed on " + path + " (" + allow_text + ")");
      r.headers.push_back({"Allow", allow_text});
      return answer(*c, seq, std::move(r));
    }
    if (!write_allowed(req))
      return refuse(403, "cross_site",
                    req.method +
                        " needs the header X-Mxprobe: 1 (or a Content-Type such as "
                        "application/json, or the bearer token): cross-site request protection");
    // Reserve the slot first: a handler that answers synchronously fills it in.
    Responder responder(c, seq, c->peer);
    if (match->stream)
      c->sink = match->stream(req, std::move(responder));
    else
      match->handler(req, std::move(responder));
    return;
  }

  if (get && !static_root_.empty()) {
    http::Response r;
    if (serve_static(req, r)) return answer(*c, seq, std::move(r));
  }
  answer(*c, seq, json_error(404, "not_found", "no such resource: " + path));
}

}  // namespace mxp::server
