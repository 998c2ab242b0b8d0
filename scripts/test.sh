#!/usr/bin/env bash
# Sets up everything the tests need (Debian clients, npm packages, a build) and runs the whole suite.
# Used by the README and by .ci/run. Needs root for apt and for containerd/podman tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/install-deps.sh ]; then bash scripts/install-deps.sh; fi
npm ci --no-audit --no-fund
npm run build
npx tsc -p tsconfig.test.json
# node:test prints "# pass N" / "# fail N"; unit and conformance tests run two at a time, the real-client
# end-to-end tests one at a time (they start containerd/podman and share the CPU).
# Node 20's test runner does not expand globs itself: let bash do it.
shopt -s globstar nullglob
node --import tsx --test --test-concurrency=2 test/unit/**/*.test.ts test/conformance/*.test.ts test/integration/*.test.ts
e2e=(test/e2e/*.test.ts)
if [ ${#e2e[@]} -gt 0 ]; then
  node --import tsx --test --test-concurrency=1 "${e2e[@]}"
fi
