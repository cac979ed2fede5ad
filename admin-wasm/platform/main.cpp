// Platform glue of the console: GLFW window and WebGL2 context, the main loop (frames drawn only
// when something changed), the WebSocket to `mxprobe serve` with reconnects, the token, and the
// state published to `window.mxprobe` for the browser test (tests/browser/).
#include <GLES3/gl3.h>
#include <GLFW/glfw3.h>
#include <emscripten.h>
#include <emscripten/websocket.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "console.hpp"
#include "imgui.h"
#include "imgui_impl_glfw.h"
#include "imgui_impl_opengl3.h"

// ---------------------------------------------------------------------------------------------
// JavaScript side (clang-format would break JS operators such as ===)
// ---------------------------------------------------------------------------------------------
// clang-format off

// A JS string copied to the wasm heap (the caller frees it).
EM_JS(char*, js_string_page_host, (), {
  var s = location.host;
  var n = lengthBytesUTF8(s) + 1;
  var p = _malloc(n);
  stringToUTF8(s, p, n);
  return p;
});
EM_JS(int, js_page_is_https, (), { return location.protocol == "https:" ? 1 : 0; });
EM_JS(char*, js_string_token, (), {
  var s = "";
  try {
    s = sessionStorage.getItem("mxprobe.token") || "";
  } catch (e) {
  }
  var n = lengthBytesUTF8(s) + 1;
  var p = _malloc(n);
  stringToUTF8(s, p, n);
  return p;
});
EM_JS(void, js_store_token, (const char* token), {
  try {
    var t = UTF8ToString(token);
    if (t)
      sessionStorage.setItem("mxprobe.token", t);
    else
      sessionStorage.removeItem("mxprobe.token");
  } catch (e) {
  }
});
// Whether the server wants a token (GET /healthz is public and says so), then, with one, whether
// it is the right one: the status handed to mxc_on_probe is 200 (go on), 401 (ask for a token)
// or 0 (no answer). No request is made that is known to fail.
EM_JS(void, js_probe_auth, (int generation, const char* token), {
  var t = UTF8ToString(token);
  fetch("/healthz", {cache : "no-store"})
      .then(function(r) { return r.json(); })
      .then(function(h) {
        if (!h.token) return _mxc_on_probe(generation, 200);
        if (!t) return _mxc_on_probe(generation, 401);
        return fetch("/v1/jobs", {headers : {"Authorization" : "Bearer " + t}, cache : "no-store"})
            .then(function(r) { _mxc_on_probe(generation, r.status); });
      })
      .catch(function() { _mxc_on_probe(generation, 0); });
});
EM_JS(void, js_download, (const char* path, const char* filename, const char* token), {
  var p = UTF8ToString(path), f = UTF8ToString(filename), t = UTF8ToString(token);
  var h = t ? {"Authorization" : "Bearer " + t} : {};
  fetch(p, {headers : h})
      .then(function(r) {
        if (!r.ok) throw new Error("download failed: HTTP " + r.status);
        return r.blob();
      })
      .then(function(b) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(b);
        a.download = f;
        document.body.appendChild(a);
        a.click();
        setTimeout(
            function() {
              URL.revokeObjectURL(a.href);
              a.remove();
            },
            1000);
        window.mxprobe.downloads = (window.mxprobe.downloads || 0) + 1;
      })
      .catch(function(e) { console.warn(String(e)); });
});
// A file picker (a hidden <input type=file>, id mxprobe-upload), then POST /v1/jobs with the
// file as the body (a non-simple content type, like every write of the console); the status and
// body go to mxc_on_upload (status 0: under way, -1: no answer).
EM_JS(void, js_pick_and_upload, (const char* token), {
  var t = UTF8ToString(token);
  var report = function(status, text) {
    var b = new TextEncoder().encode(text);
    var p = _malloc(b.length + 1);
    HEAPU8.set(b, p);
    HEAPU8[p + b.length] = 0;
    _mxc_on_upload(status, p);
    _free(p);
  };
  var input = document.getElementById("mxprobe-upload");
  if (!input) {
    input = document.createElement("input");
    input.type = "file";
    input.id = "mxprobe-upload";
    input.style.display = "none";
    document.body.appendChild(input);
  }
  input.value = "";
  input.onchange = function() {
    var f = input.files && input.files[0];
    if (!f) return;
    var low = f.name.toLowerCase();
    var fmt = low.endsWith(".csv") || low.endsWith(".csv.gz") ? "csv" : "jsonl";
    var h = {"Content-Type" : "application/octet-stream"};
    if (t) h["Authorization"] = "Bearer " + t;
    report(0, "uploading " + f.name + "...");
    fetch("/v1/jobs?format=" + fmt + "&name=" + encodeURIComponent(f.name),
          {method : "POST", headers : h, body : f})
        .then(function(r) { return r.text().then(function(x) { report(r.status, x); }); })
        .catch(function(e) { report(-1, String(e)); });
  };
  input.click();
});
EM_JS(void, js_publish, (const char* json), {
  var s = JSON.parse(UTF8ToString(json));
  var w = window.mxprobe || (window.mxprobe = {});
  for (var k in s)
    w[k] = s[k];
});
EM_JS(void, js_first_data_frame, (), {
  var w = window.mxprobe || (window.mxprobe = {});
  if (w.firstDataFrameMs === undefined) w.firstDataFrameMs = performance.now();
});
EM_JS(void, js_hide_loading, (), {
  var l = document.getElementById("loading");
  if (l) l.remove();
});
EM_JS(int, js_inner_width, (), { return window.innerWidth | 0; });
EM_JS(int, js_inner_height, (), { return window.innerHeight | 0; });
// Resize through Browser (glfwSetWindowSize to the screen size asks for fullscreen:
// docs/building-console.md).
EM_JS(void, js_set_canvas_size, (int w, int h), { Browser.setCanvasSize(w, h); });
// clang-format on

namespace {

using nlohmann::json;

struct App;
App* g_app = nullptr;

double now_s() {
  return emscripten_get_now() / 1000.0;
}

std::string take(char* p) {
  std::string s = p ? p : "";
  free(p);
  return s;
}

struct App final : mxc::Actions {
  GLFWwindow* window = nullptr;
  mxc::Model model;
  mxc::UiState ui;
  mxc::Connection conn;
  mxc::Fonts fonts;
  mxc::Marks marks;
  EMSCRIPTEN_WEBSOCKET_T ws = 0;
  std::string token;
  int probe_generation = 0;
  bool probing = false;
  int dirty = 3;  // frames still to draw because something changed
  double last_frame = 0;
  uint64_t frames = 0;
  bool first_data_frame = false;
  int width = 0, height = 0;
  std::string published;

  // --- Connection ---

  void set_link(mxc::Link l) {
    if (conn.link != l) conn.since = now_s();
    conn.link = l;
    dirty = 3;
  }

  void start_probe() {
    probing = true;
    js_probe_auth(++probe_generation, token.c_str());
  }

  void on_probe(int generation, int status) {
    if (generation != probe_generation) return;
    probing = false;
    if (status == 401) {
      conn.token_refused = !token.empty();
      conn.has_token = false;
      return set_link(mxc::Link::NeedToken);
    }
    if (status != 200) return retry_later();
    connect();
  }

  void connect() {
    const std::string url =
        std::string(js_page_is_https() ? "wss://" : "ws://") + conn.host + "/ws";
    const std::string protocols = token.empty() ? "mxprobe.v1" : "mxprobe.v1,bearer." + token;
    EmscriptenWebSocketCreateAttributes attr;
    emscripten_websocket_init_create_attributes(&attr);
    attr.url = url.c_str();
    attr.protocols = protocols.c_str();
    ws = emscripten_websocket_new(&attr);
    if (ws <= 0) return retry_later();
    emscripten_websocket_set_onopen_callback(ws, this, on_open);
    emscripten_websocket_set_onmessage_callback(ws, this, on_message);
    emscripten_websocket_set_onclose_callback(ws, this, on_close);
    set_link(conn.attempts ? mxc::Link::Reconnecting : mxc::Link::Connecting);
  }

  void retry_later() {
    ++conn.attempts;
    // 0.5 s, 1 s, 2 s, then every 4 s.
    const double wait = std::min(4.0, 0.5 * double(1 << std::min(conn.attempts - 1, 3)));
    conn.retry_at = now_s() + wait;
    set_link(mxc::Link::Reconnecting);
  }

  static EM_BOOL on_open(int, const EmscriptenWebSocketOpenEvent*, void* self) {
    auto* a = static_cast<App*>(self);
    a->conn.attempts = 0;
    a->conn.has_token = !a->token.empty();
    a->conn.token_refused = false;
    a->set_link(mxc::Link::Live);
    return EM_TRUE;
  }
  static EM_BOOL on_message(int, const EmscriptenWebSocketMessageEvent* e, void* self) {
    auto* a = static_cast<App*>(self);
    if (!e->isText || !e->numBytes) return EM_TRUE;
    // Text frames arrive NUL-terminated.
    const size_t n = e->numBytes - (e->data[e->numBytes - 1] == 0 ? 1 : 0);
    a->model.apply(std::string_view(reinterpret_cast<const char*>(e->data), n), now_s());
    // Two frames: ImGui sizes a table (or window) that appears in one frame on the next one.
    a->dirty = std::max(a->dirty, 2);
    return EM_TRUE;
  }
  static EM_BOOL on_close(int, const EmscriptenWebSocketCloseEvent* e, void* self) {
    auto* a = static_cast<App*>(self);
    if (e->socket == a->ws) {
      emscripten_websocket_delete(a->ws);
      a->ws = 0;
      a->model.reset_connection();
      a->retry_later();
    }
    return EM_TRUE;
  }

  // --- Actions ---

  void send(const std::string& text) override {
    if (ws > 0 && conn.link == mxc::Link::Live)
      emscripten_websocket_send_utf8_text(ws, text.c_str());
  }
  void download(const std::string& path, const std::string& filename) override {
    js_download(path.c_str(), filename.c_str(), token.c_str());
  }
  void upload() override { js_pick_and_upload(token.c_str()); }
  void login(const std::string& t) override {
    token = t;
    js_store_token(token.c_str());
    conn.attempts = 0;
    set_link(mxc::Link::Connecting);
    start_probe();
  }
  void logout() override {
    token.clear();
    js_store_token("");
    if (ws > 0) emscripten_websocket_close(ws, 1000, "logout");
  }

  // --- Frames ---

  void frame() {
    const double now = now_s();
    const int w = js_inner_width(), h = js_inner_height();
    if (w != width || h != height) {
      width = w;
      height = h;
      js_set_canvas_size(w, h);
      dirty = 3;
    }
    if (conn.link == mxc::Link::Reconnecting && !ws && !probing && now >= conn.retry_at)
      start_probe();
    // A socket that says nothing for 6 s is dead to us (snapshots come every 250 ms).
    if (conn.link == mxc::Link::Live && ws > 0 && model.have_snapshot &&
        now - model.last_snapshot_at > 6)
      emscripten_websocket_close(ws, 4000, "no snapshot for 6 s");
    bool busy = false;  // something animates: a check in progress, a countdown
    for (const auto& c : model.checks)
      busy = busy || !c.done;
    for (const auto& p : model.probes)
      busy = busy || !p.done;
    const double idle = busy ? 0.1 : 0.5;
    if (dirty <= 0 && now - last_frame < idle) return;
    dirty = std::max(0, dirty - 1);
    last_frame = now;
    render(now);
  }

  void render(double now) {
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGuiIO& io = ImGui::GetIO();
    // Headless Chromium can give two frames the same time (docs/building-console.md); so can idle
    // gaps.
    io.DeltaTime = std::clamp(io.DeltaTime, 1e-4f, 0.5f);
    ImGui::NewFrame();
    mxc::draw_console(model, ui, conn, *this, fonts, now, marks);
    ImGui::Render();
    int fw = 0, fh = 0;
    glfwGetFramebufferSize(window, &fw, &fh);
    glViewport(0, 0, fw, fh);
    glClearColor(0.075f, 0.082f, 0.10f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    if (++frames == 1) js_hide_loading();
    if (model.have_snapshot && !first_data_frame) {
      first_data_frame = true;
      js_first_data_frame();
    }
    publish();
  }

  // What the browser test waits on: connection, counts, the jobs and groups seen, checks, the
  // last ack and the rectangles of the named widgets.
  void publish() {
    static const char* const links[] = {"connecting", "live", "reconnecting", "token"};
    json rects = json::object();
    for (const auto& [k, r] : marks.rects)
      rects[k] = {r[0], r[1], r[2], r[3]};
    json jobs = json::array();
    for (const auto& j : model.snap.jobs) {
      json recent = json::array();  // the webhook's last deliveries, as the model has them
      if (j.webhook)
        for (const auto& d : j.webhook->recent)
          recent.push_back({{"seq", d.seq}, {"state", d.state}, {"last_status", d.last_status}});
      jobs.push_back({{"id", j.id},
                      {"name", j.name},
                      {"state", j.state},
                      {"done", j.done},
                      {"records", j.records},
                      {"webhook_recent", recent}});
    }
    json events = json::array();
    for (const auto& e : model.events)
      events.push_back({{"kind", e.kind}, {"text", e.text}, {"time_ms", e.time_ms}});
    json groups = json::array();
    for (const auto& g : model.snap.groups)
      groups.push_back({{"name", g.name},
                        {"connect_rate", g.connect_rate},
                        {"rcpt_rate", g.rcpt_rate},
                        {"sessions", g.sessions}});
    json checks = json::array();
    for (const auto& c : model.checks)
      checks.push_back(
          {{"id", c.id},
           {"email", c.email},
           {"done", c.done},
           {"verdict", c.verdict},
           {"reason", c.reason},
           {"error", c.error},
           {"why", c.done && !c.verdict.empty() && c.transcript.empty() ? mxc::no_transcript_why(c)
                                                                        : std::string()},
           {"transcript", c.transcript},
           {"live_lines", c.live_lines},
           {"mx_tried", c.mx_tried},
           {"retry_after", c.retry_after}});
    json probes = json::array();
    for (const auto& p : model.probes)
      probes.push_back({{"id", p.id},
                        {"target", p.target},
                        {"done", p.done},
                        {"error", p.error},
                        {"report", p.report}});
    // The start-up checks' summary per source, as the Source IPs panel shows it (null until
    // checked).
    json sources = json::array();
    for (const auto& x : model.snap.sources) {
      json d = nullptr;
      if (const auto& c = x.doctor)
        d = {{"helo", c->helo},
             {"heloFqdn", c->helo_fqdn},
             {"ptr", c->ptr ? json(*c->ptr) : json(nullptr)},
             {"port25", c->port25},
             {"inRotation", c->in_rotation},
             {"dnsblListed", c->dnsbl_listed},
             {"problems", c->problems}};
      sources.push_back({{"ip", x.ip}, {"state", x.state}, {"doctor", d}});
    }
    json ack = nullptr;
    if (model.last_ack)
      ack = {{"id", model.last_ack->id},
             {"cmd", model.last_ack->cmd},
             {"ok", model.last_ack->ok},
             {"error", model.last_ack->error}};
    json cluster = nullptr;
    if (const auto& c = model.snap.cluster) {
      json nodes = json::array();
      for (const auto& n : c->nodes)
        nodes.push_back({{"name", n.name}, {"role", n.role}, {"addresses", n.addresses}});
      json cgroups = json::array();
      for (const auto& g : c->groups)
        cgroups.push_back(
            {{"group", g.group}, {"sessions", g.sessions}, {"sessions_limit", g.sessions_limit}});
      cluster = {{"node", c->node},
                 {"redisUp", c->redis_up},
                 {"nodes", nodes},
                 {"groups", cgroups},
                 {"haveChunks", c->have_chunks}};
    }
    json s = {{"link", links[static_cast<int>(conn.link)]},
              {"connected", conn.link == mxc::Link::Live},
              {"snapshots", model.snapshots},
              {"seq", model.snap.seq},
              {"panel", mxc::kPanelNames[static_cast<int>(ui.panel)]},
              {"selectedGroup", ui.selected_group},
              {"policyStatus", ui.policy_status},
              {"jobs", jobs},
              {"events", events},
              {"total", model.snap.total()},
              {"cacheHits", model.snap.cache_hits},
              {"uploadStatus", ui.upload_status},
              {"groups", groups},
              {"sources", sources},
              {"checks", checks},
              {"probes", probes},
              {"lastAck", ack},
              {"cluster", cluster},
              {"rects", rects},
              {"canvas", {width, height}}};
    // Frame counts change every frame: kept out of the comparison so that an idle console
    // does not rebuild window.mxprobe.
    std::string text = s.dump();
    if (text == published) return;
    published = std::move(text);
    s["frames"] = frames;
    js_publish(s.dump().c_str());
  }
};

void mark_dirty() {
  if (g_app) g_app->dirty = std::max(g_app->dirty, 3);
}
void cb_cursor(GLFWwindow*, double, double) {
  mark_dirty();
}
void cb_button(GLFWwindow*, int, int, int) {
  mark_dirty();
}
void cb_scroll(GLFWwindow*, double, double) {
  mark_dirty();
}
void cb_key(GLFWwindow*, int, int, int, int) {
  mark_dirty();
}
void cb_char(GLFWwindow*, unsigned int) {
  mark_dirty();
}

void main_loop() {
  g_app->frame();
}

}  // namespace

extern "C" EMSCRIPTEN_KEEPALIVE void mxc_on_probe(int generation, int status) {
  if (g_app) g_app->on_probe(generation, status);
}

// The upload's outcome: 0 under way, 201 the job (JSON), else the server's error or -1.
extern "C" EMSCRIPTEN_KEEPALIVE void mxc_on_upload(int status, const char* text) {
  if (!g_app) return;
  auto& ui = g_app->ui;
  json j = json::parse(text ? text : "", nullptr, false);
  ui.upload_ok = status == 0 || status == 201;
  if (status == 0) {
    ui.upload_status = text ? text : "";
  } else if (status == 201 && j.is_object()) {
    const std::string name =
        j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : "";
    ui.upload_status = "job " + std::to_string(j.value("id", uint64_t{0})) + " started" +
                       (name.empty() ? "" : " (" + name + ")");
  } else if (status < 0) {
    ui.upload_status = std::string("upload failed: ") + (text ? text : "");
  } else {
    std::string msg = j.is_object() && j.contains("message") && j["message"].is_string()
                          ? j["message"].get<std::string>()
                          : std::string(text ? text : "").substr(0, 200);
    ui.upload_status = "upload refused (HTTP " + std::to_string(status) + "): " + msg;
  }
  mark_dirty();
}

int main() {
  if (!glfwInit()) {
    std::fprintf(stderr, "glfwInit failed\n");
    return 1;
  }
  static App app;
  g_app = &app;
  app.width = js_inner_width();
  app.height = js_inner_height();
  glfwWindowHint(GLFW_CLIENT_API, GLFW_OPENGL_ES_API);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  app.window = glfwCreateWindow(app.width, app.height, "mxprobe console", nullptr, nullptr);
  if (!app.window) {
    std::fprintf(stderr, "no WebGL2 context\n");
    return 1;
  }
  glfwMakeContextCurrent(app.window);
  js_set_canvas_size(app.width, app.height);
  // Ours first: ImGui's backend chains to them, so every input also asks for a frame.
  glfwSetCursorPosCallback(app.window, cb_cursor);
  glfwSetMouseButtonCallback(app.window, cb_button);
  glfwSetScrollCallback(app.window, cb_scroll);
  glfwSetKeyCallback(app.window, cb_key);
  glfwSetCharCallback(app.window, cb_char);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  mxc::setup_style(app.fonts, 15.f);
  ImGui_ImplGlfw_InitForOpenGL(app.window, true);
  ImGui_ImplOpenGL3_Init("#version 300 es");

  app.conn.host = take(js_string_page_host());
  app.token = take(js_string_token());
  app.start_probe();
  emscripten_set_main_loop(main_loop, 0, false);
  return 0;
}
