#!/usr/bin/env bash
# Quick start: install dependencies (first run only) and serve the registry on embedded defaults
# (filesystem blobs + SQLite metadata under ./data) at 127.0.0.1:5000. Extra args go to `shoal serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
[ -f dist/cli/main.js ] || npm run build
exec node --no-concurrent-recompilation bin/shoal.js serve --listen "${SHOAL_LISTEN:-127.0.0.1:5000}" --data "${SHOAL_DATA:-./data}" "$@"
