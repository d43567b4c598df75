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
