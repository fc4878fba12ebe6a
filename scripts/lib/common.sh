# Shared by the scripts in scripts/: package installation and the build folder layout.
# Sourced, not run.

MBOK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MBOK_JOBS="${MBOK_JOBS:-$(nproc 2>/dev/null || echo 2)}"

# Packages every build needs (compiler, CMake, the libraries the tests, tools and examples use).
MBOK_BUILD_PACKAGES=(build-essential cmake ninja-build pkg-config libeigen3-dev catch2 libbenchmark-dev
  nlohmann-json3-dev libxxhash-dev libpcre2-dev libcli11-dev libopenblas-dev libomp-dev libopenmpi-dev openmpi-bin)

log() { printf '\n==> %s\n' "$*"; }

# ensure_packages PKG...: installs the Debian packages that are missing (apt-get, as root,
# non-interactive). Without root it names the missing packages and stops.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing packages (${missing[*]}) and no apt-get: install them by hand" >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "error: missing Debian packages: ${missing[*]}" >&2
      echo "       run as root, or install them first: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
