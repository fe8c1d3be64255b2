#!/usr/bin/env bash
# Installs the load generator the harness drives, oha, unless it is already on PATH.
# Builds from crates.io (about 10 minutes on 2 cores); set CARGO_TARGET_DIR to keep its build
# out of the workspace's target directory.
set -euo pipefail

if command -v oha >/dev/null 2>&1; then
    echo "oha is installed: $(oha --version)"
    exit 0
fi
cargo install oha --locked
oha --version
