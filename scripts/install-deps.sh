#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests drive (real OCI clients and
# reference servers). Idempotent and quiet: when everything is present it only
# runs dpkg-query and exits. Waits for a running apt/dpkg instead of fighting
# the lock. Meant for Debian 12 (bookworm), run as root (or with sudo).
set -euo pipefail

PACKAGES=(
  docker-registry # CNCF Distribution 2.8, the reference server
  skopeo          # copy/inspect images between oci: layouts and registries
  umoci           # unpack/inspect OCI layouts
  containerd      # ctr pull/run; pulls in runc
  runc
  podman
  buildah
  wrk
  busybox-static  # /bin/busybox, the rootfs of the test images
  apache2-utils   # htpasswd: basic-auth users for the private-registry P2P test
  python3-packaging # pypa/packaging: the PEP 440 oracle of the scanner's version tests
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
    exit 1
  fi
fi

# Wait (bounded) for another apt/dpkg run to finish: apt-get update does not
# honour DPkg::Lock::Timeout for the lists lock on every apt version.
wait_for_apt() {
  local waited=0
  while pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1 \
    || pgrep -x unattended-upgr >/dev/null 2>&1; do
    if [[ $waited -ge 900 ]]; then
      echo "install-deps: another apt/dpkg process is still running after ${waited}s" >&2
      return 1
    fi
    [[ $waited -eq 0 ]] && echo "install-deps: waiting for another apt/dpkg process to finish" >&2
    sleep 2
    waited=$((waited + 2))
  done
}

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=900 -o Dpkg::Use-Pty=0 -qq)

wait_for_apt
# A concurrent install may have brought them in meanwhile: re-check.
still=()
for pkg in "${missing[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || still+=("$pkg")
done
[[ ${#still[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${still[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deps: apt-get update failed" >&2
  exit 1
fi
wait_for_apt
if ! "${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y "${still[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deps: apt-get install failed" >&2
  exit 1
fi
echo "install-deps: installed ${still[*]}" >&2
