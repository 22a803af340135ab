# ops/lib.sh - shared by ops/test and ops/demo.  Sourced, not run.
#
# qiao_setup: installs the Debian packages the build needs when any is
# missing (as root, through apt-get), then configures and builds into the
# given directory.

QIAO_DEBS=(gcc libc6-dev make cmake pkg-config
           libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
           liblmdb-dev libsodium-dev libssl-dev libjansson-dev libconfig-dev libsqlite3-dev
           libmicrohttpd-dev)

qiao_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

qiao_need_packages() {
  local missing=() p
  for p in "${QIAO_DEBS[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "ops: missing Debian packages: ${missing[*]}" >&2
    echo "ops: run as root, or install them: apt-get install ${missing[*]}" >&2
    return 1
  fi
  qiao_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# qiao_build DIR [cmake args...]
qiao_build() {
  local dir=$1; shift
  qiao_log "building in $dir $*"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null
}
