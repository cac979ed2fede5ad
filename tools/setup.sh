#!/usr/bin/env bash
# Installs everything mxprobe needs on Debian 12, idempotently: Debian packages, Dear ImGui's
# source (from Debian's source package, into the git-ignored third_party/), npm packages for the
# browser tests. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pkgs=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev lld git ca-certificates time python3 python3-websockets jq iproute2
  # engine libraries
  libuv1-dev libc-ares-dev liburing-dev libssl-dev libsqlite3-dev libwslay-dev libhttp-parser-dev
  libhiredis-dev
  nlohmann-json3-dev libcli11-dev libidn2-dev libtomlplusplus-dev libcsv-dev zlib1g-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # mail and DNS peers for integration tests and benchmarks
  postfix dnsmasq-base swaks bind9-dnsutils microsocks wrk gnuplot-nox openssl
  # the wire and system-call counts of bench_wire.sh
  tcpdump linux-perf
  # the cluster's Redis (tests start their own; docs/cluster.md)
  redis-server
  # the progress line at a fixed terminal width (tests/integration/app/progress_tty.sh)
  tmux
  # console: Emscripten, headless browser, node for playwright-core
  emscripten chromium dpkg-dev
)
# node and npm: the machine image ships them (nodesource's nodejs, which conflicts with Debian's
# npm package); a machine without node gets Debian's.
command -v npm >/dev/null || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  # postfix asks a question unless told; "No configuration" starts nothing (docs/peers.md).
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Dear ImGui source: from Debian's source package, never committed (docs/building-console.md).
imgui_dir=$root/third_party/imgui
if [[ ! -f $imgui_dir/imgui.cpp ]]; then
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    echo "setup: adding a deb-src entry for Debian's source packages"
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        > /etc/apt/sources.list.d/mxprobe-src.sources
    else
      echo "deb-src http://deb.debian.org/debian bookworm main" > /etc/apt/sources.list.d/mxprobe-src.list
    fi
    apt-get update -qq
  fi
  mkdir -p "$root/third_party"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get source -qq imgui >/dev/null 2>&1)
  src=$(find "$tmp" -maxdepth 1 -type d -name 'imgui-*' | head -n1)
  [[ -n $src && -f $src/imgui.cpp ]] || { echo "setup: apt-get source imgui failed" >&2; exit 1; }
  rm -rf "$imgui_dir"
  mv "$src" "$imgui_dir"
  rm -rf "$tmp"
fi

# npm packages for the browser tests (playwright-core drives Debian's chromium; no download).
if [[ -f $root/tests/browser/package.json && ! -d $root/tests/browser/node_modules ]]; then
  (cd "$root/tests/browser" && npm install --no-audit --no-fund --silent)
fi
# The published verifier that bench-peers compares with (pinned by its package-lock.json).
if [[ -f $root/bench/e2e/peers/package-lock.json && ! -d $root/bench/e2e/peers/node_modules ]]; then
  (cd "$root/bench/e2e/peers" && npm ci --no-audit --no-fund --silent)
fi
# Disposable and free-provider domain lists (pinned by data/domains/package-lock.json; its .npmrc
# turns install scripts off). The build turns them into the compact file the engine reads.
if [[ -f $root/data/domains/package-lock.json && ( ! -d $root/data/domains/node_modules ||
      $root/data/domains/package-lock.json -nt $root/data/domains/node_modules/.package-lock.json ) ]]; then
  (cd "$root/data/domains" && npm ci --no-audit --no-fund --silent)
fi
echo "setup: ok"
