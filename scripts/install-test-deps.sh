#!/usr/bin/env bash
# Installs what the tests need, only when it is missing (safe to run again):
#   * Debian's prometheus package, used by tests/prometheus_interop.rs;
#   * the rustfmt and clippy toolchain components, used by .ci/run.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-test-deps: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

if [ -x /usr/bin/prometheus ]; then
    echo "install-test-deps: prometheus present ($(/usr/bin/prometheus --version 2>&1 | head -n 1))"
else
    echo "install-test-deps: installing Debian's prometheus package"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt run (for instance an unattended one) instead of failing on its lock.
    as_root apt-get -o DPkg::Lock::Timeout=600 update
    as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends prometheus
    if [ ! -x /usr/bin/prometheus ]; then
        echo "install-test-deps: the prometheus package did not provide /usr/bin/prometheus" >&2
        exit 1
    fi
fi

# Debian's Alertmanager, used by tests/notify_alertmanager.rs (alerts forwarded as Prometheus does).
if [ -x /usr/bin/prometheus-alertmanager ]; then
    echo "install-test-deps: prometheus-alertmanager present"
else
    echo "install-test-deps: installing Debian's prometheus-alertmanager package"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=600 update
    as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends prometheus-alertmanager
    if [ ! -x /usr/bin/prometheus-alertmanager ]; then
        echo "install-test-deps: the prometheus-alertmanager package did not provide /usr/bin/prometheus-alertmanager" >&2
        exit 1
    fi
fi

# tests/scrape_e2e.rs scrapes Debian's node exporter (started by the test on a free port).
if [ -x /usr/bin/prometheus-node-exporter ]; then
    echo "install-test-deps: prometheus-node-exporter present"
else
    echo "install-test-deps: installing Debian's prometheus-node-exporter package"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=600 update
    as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends prometheus-node-exporter
    if [ ! -x /usr/bin/prometheus-node-exporter ]; then
        echo "install-test-deps: the package did not provide /usr/bin/prometheus-node-exporter" >&2
        exit 1
    fi
fi

if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup component list --installed)"
    for component in rustfmt clippy; do
        if ! grep -q "^${component}" <<<"$installed"; then
            echo "install-test-deps: adding the ${component} component"
            rustup component add "$component"
        fi
    done
else
    for tool in rustfmt cargo-clippy; do
        command -v "$tool" >/dev/null 2>&1 ||
            echo "install-test-deps: warning: $tool not found and rustup is not available" >&2
    done
fi

# tests/promql_differential.rs uses the same /usr/bin/prometheus, started with
# --web.enable-remote-write-receiver (Prometheus >= 2.33; Debian ships 2.42): nothing more to install.
# --- OTLP client tests (tests/otlp_client.rs, tests/otlp_logs.rs) ---------------------------
# Python's OpenTelemetry SDK with the OTLP gRPC and HTTP exporters, pinned, in a virtualenv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/sextant-venv (the test finds it there). Reinstalled only when
# the pinned version changes or the venv is broken.
OTEL_PYTHON_VERSION=1.45.2
otel_venv="${XDG_CACHE_HOME:-$HOME/.cache}/sextant-venv"
otel_stamp="$otel_venv/.sextant-otel-$OTEL_PYTHON_VERSION"
if [ -f "$otel_stamp" ] && "$otel_venv/bin/python" -c \
    'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http' \
    2>/dev/null; then
    echo "install-test-deps: OpenTelemetry Python SDK $OTEL_PYTHON_VERSION present in $otel_venv"
else
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        echo "install-test-deps: installing Debian's python3 and python3-venv"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get -o DPkg::Lock::Timeout=600 update
        as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3 python3-venv
    fi
    echo "install-test-deps: installing the OpenTelemetry Python SDK $OTEL_PYTHON_VERSION into $otel_venv"
    rm -rf "$otel_venv"
    python3 -m venv "$otel_venv"
    "$otel_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "opentelemetry-api==$OTEL_PYTHON_VERSION" \
        "opentelemetry-sdk==$OTEL_PYTHON_VERSION" \
        "opentelemetry-exporter-otlp-proto-grpc==$OTEL_PYTHON_VERSION" \
        "opentelemetry-exporter-otlp-proto-http==$OTEL_PYTHON_VERSION"
    touch "$otel_stamp"
fi

# --- Web console browser test (tests/ui_e2e.rs) -------------------------------------------
# Debian's chromium, driven by playwright-core; Debian's firefox-esr, driven by puppeteer-core
# over WebDriver BiDi; node and npm to run them; the console's locked npm packages
# (playwright-core, puppeteer-core, and esbuild/preact/uplot for ui/build.sh) in ui/node_modules.
need_ui_pkgs=()
[ -x /usr/bin/chromium ] || need_ui_pkgs+=(chromium)
[ -x /usr/bin/firefox-esr ] || need_ui_pkgs+=(firefox-esr)
command -v node >/dev/null 2>&1 || need_ui_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_ui_pkgs+=(npm)
if [ "${#need_ui_pkgs[@]}" -gt 0 ]; then
    echo "install-test-deps: installing Debian's ${need_ui_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=600 update
    as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need_ui_pkgs[@]}"
else
    echo "install-test-deps: chromium, firefox-esr, node and npm present"
fi
ui_dir="$(dirname "${BASH_SOURCE[0]}")/../ui"
if [ -f "$ui_dir/node_modules/.package-lock.json" ] &&
    cmp -s "$ui_dir/package-lock.json" "$ui_dir/node_modules/.sextant-lock"; then
    echo "install-test-deps: ui/node_modules matches ui/package-lock.json"
else
    echo "install-test-deps: npm ci in ui/"
    (cd "$ui_dir" && npm ci --no-audit --no-fund --loglevel=error &&
        cp package-lock.json node_modules/.sextant-lock)
fi
