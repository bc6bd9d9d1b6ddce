#!/usr/bin/env bash
# `make run`: prepare var/, then run switchd in the foreground with conf/ defaults.
# Every child stays in this process group; SIGINT/SIGTERM reach them all.
set -euo pipefail
CONFIG="${1:-conf/switch.toml}"
PY=.venv/bin
"$PY/switchctl" init --config "$CONFIG"
exec "$PY/switchd" --config "$CONFIG"
