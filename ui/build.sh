#!/usr/bin/env bash
# Rebuilds ui/dist/ (committed; embedded into the binary by ui/src/lib.rs) from ui/app/ with
# the packages locked in ui/package-lock.json. `--check` rebuilds into a scratch copy and fails
# when the committed dist differs (CI's guard that dist/ matches the source).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# The locked packages, reinstalled only when package-lock.json changed since the last npm ci.
if ! cmp -s package-lock.json node_modules/.sextant-lock 2>/dev/null; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.sextant-lock
fi
if [ "${1:-}" = "--check" ]; then
    saved="$(mktemp -d)"
    cp -r dist/. "$saved/"
    node build.mjs
    if ! diff -r "$saved" dist >/dev/null; then
        diff -r "$saved" dist | head -n 20 >&2 || true
        cp -r "$saved/." dist/
        rm -rf "$saved"
        echo "ui/build.sh --check: ui/dist differs from a build of ui/app; run ui/build.sh and commit dist/" >&2
        exit 1
    fi
    rm -rf "$saved"
    echo "ui/build.sh --check: ui/dist matches the source"
else
    node build.mjs
    ls -l dist
fi
