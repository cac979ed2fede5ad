// The console's panels: plain functions of the model (model.hpp) and a little UI state that draw
// with Dear ImGui. Whatever they want done outside (send a command, download a file, log in) goes
// through Actions, implemented by the platform glue (platform/main.cpp).
#pragma once

#include <array>
#include <map>
#include <set>
#include <string>

#include "model.hpp"

struct ImFont;

namespace mxc {

struct Actions {
  virtual ~Actions() = default;
  virtual void send(const std::string& text) = 0;
  // GET path with the token (if any) and save the body as filename.
  virtual void download(const std::string& path, const std::string& filename) = 0;
  // Lets the user pick a file and POSTs it to /v1/jobs; the outcome lands in UiState's
  // upload_status.
  virtual void upload() = 0;
  virtual void login(const std::string& token) = 0;
  virtual void logout() = 0;
};

enum class Link { Connecting, Live, Reconnecting, NeedToken };

struct Connection {
  Link link = Link::Connecting;
  double since = 0;     // when link took its value (client clock, s)
  double retry_at = 0;  // Reconnecting: next attempt
  int attempts = 0;     // failed attempts in a row
  bool has_token = false;
  bool token_refused = false;
  std::string host;
};

// Cluster is listed only while the snapshot has a cluster (serve --cluster).
enum class Panel : int { Overview, Domains, Sources, Jobs, Check, Probe, Cluster, Count };
extern const char* const kPanelNames[static_cast<int>(Panel::Count)];  // overview, domains, ...

struct UiState {
  Panel panel = Panel::Overview;
  // Domains and MX groups
  char filter[128] = "";
  bool only_backing_off = false;
  std::string selected_group;
  std::string edit_for;  // the group the edit fields were filled from
  int edit_sessions = 0;
  float edit_connect_rate = 0, edit_rcpt_rate = 0;
  std::string policy_status;
  bool policy_status_ok = true;
  int64_t policy_cmd_id = 0;
  // Jobs
  uint64_t cancel_armed = 0;  // job whose Cancel was clicked once
  double cancel_armed_at = 0;
  std::string upload_status;  // "job 4 started (list.csv)" or why not
  bool upload_ok = true;
  std::set<uint64_t> webhook_log_open;  // jobs whose last webhook deliveries are shown
  // Check
  char check_email[256] = "";
  int64_t selected_check = 0;  // id; 0 = newest
  // Probe
  char probe_target[256] = "";
  int probe_samples = 3, probe_connections = 5;
  float probe_rate = 4;
  int64_t selected_probe = 0;
  // Login
  char token[256] = "";
};

// Rectangles (x, y, w, h in canvas pixels) of named widgets, for the browser test.
struct Marks {
  std::map<std::string, std::array<float, 4>> rects;
  void mark(const std::string& name);  // the last item drawn
};

struct Fonts {
  ImFont* body = nullptr;
  ImFont* big = nullptr;
  ImFont* mono = nullptr;
  ImFont* small = nullptr;
};

// Loads fonts (from memory, when the build embedded them) and sets the dark theme.
void setup_style(Fonts& fonts, float body_px);
void draw_console(Model& m, UiState& ui, const Connection& conn, Actions& act, const Fonts& fonts,
                  double now, Marks& marks);

}  // namespace mxc
