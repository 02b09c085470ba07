#!/usr/bin/env bash
# Installs everything Provenant's tests and embedded mode need, idempotently and pinned:
#   - npm dependencies (when node_modules is missing or stale)
#   - the Temporal CLI (dev server) built from its Go module, cached per user
# Go's module and build caches are reused when present; nothing here depends on them.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_CLI_VERSION="v1.5.1"
CACHE_DIR="${PROVENANT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/provenant}"
BIN_DIR="$CACHE_DIR/bin"
mkdir -p "$BIN_DIR"

log() { printf '[setup] %s\n' "$*"; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi

install_go_tool() { # name module@version target
  local name="$1" module="$2" target="$3"
  if [ -x "$target" ]; then
    log "$name: cached at $target"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "$name: 'go' is not installed; cannot build $module"
    return 1
  fi
  log "$name: building $module (first time only; takes a few minutes)"
  local tmp
  tmp="$(mktemp -d)"
  GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -trimpath" go install "$module"
  mv "$tmp/$(basename "${module%@*}")" "$target.tmp.$$"
  mv "$target.tmp.$$" "$target"
  rm -rf "$tmp"
  log "$name: installed at $target"
}

install_go_tool temporal "github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}" "$BIN_DIR/temporal-${TEMPORAL_CLI_VERSION}"
ln -sf "temporal-${TEMPORAL_CLI_VERSION}" "$BIN_DIR/temporal"
"$BIN_DIR/temporal" --version
