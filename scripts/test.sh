#!/usr/bin/env bash
# Runs every test of the workspace, the PromQL conformance suite and the Prometheus interop
# test included, after installing what they need. Extra arguments go to `cargo test`.
# An existing CARGO_TARGET_DIR is used as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
