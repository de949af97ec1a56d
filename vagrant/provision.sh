#!/usr/bin/env bash
# packetlab's one installer — used by `vagrant up`, by `make lab`/`make test` on a
# bare Debian/Ubuntu host, and by CI. Idempotent: on a provisioned machine it
# only re-checks and finishes in seconds.
#
#   sudo vagrant/provision.sh [--with-test-tools] [--jupyter-service USER]
#
#   --with-test-tools       also install what `make test` needs beyond the labs (vagrant, chromium)
#   --jupyter-service USER  install and start a systemd unit serving JupyterLab on labs/ (the Vagrant VM uses it)
#
# Honours http_proxy / https_proxy / no_proxy for apt and pip.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$REPO/.venv/.provisioned"
WITH_TEST_TOOLS=0
SERVICE_USER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --with-test-tools) WITH_TEST_TOOLS=1 ;;
    --jupyter-service) SERVICE_USER="${2:?--jupyter-service needs a user}"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die()  { printf '\033[1;31mprovision.sh: %s\033[0m\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, BPF and packages need it): sudo $0"

# ---- supported systems -----------------------------------------------------------------
. /etc/os-release
case "${ID}:${VERSION_ID:-}" in
  debian:12|ubuntu:22.04|ubuntu:24.04) ;;
  *) die "unsupported OS '${PRETTY_NAME:-$ID}'. packetlab provisions Debian 12 and Ubuntu 22.04/24.04; on anything else use the VM: vagrant up" ;;
esac

# ---- proxy -------------------------------------------------------------------------------
PROXY_CONF=/etc/apt/apt.conf.d/95packetlab-proxy
if [ -n "${http_proxy:-}${https_proxy:-}" ]; then
  say "using proxy ${http_proxy:-} ${https_proxy:-} for apt and pip"
  { [ -n "${http_proxy:-}" ] && echo "Acquire::http::Proxy \"$http_proxy\";"
    [ -n "${https_proxy:-}" ] && echo "Acquire::https::Proxy \"$https_proxy\";"; } > "$PROXY_CONF"
  export http_proxy https_proxy no_proxy
elif [ -f "$PROXY_CONF" ]; then
  rm -f "$PROXY_CONF"
fi

# ---- system packages ---------------------------------------------------------------------
PACKAGES=(
  # build and load BPF
  clang llvm bpftool libbpf-dev python3-bpfcc bpfcc-tools make
  # the network itself
  iproute2 nftables iptables conntrack ethtool iputils-ping tcpdump tshark netsniff-ng iperf3 curl util-linux procps kmod
  # later modules: real servers, load generators, container runtimes
  nginx haproxy wrk podman containernetworking-plugins containerd runc busybox
  # python
  python3-venv python3-pip python3-dev
)
# vagrant for `vagrant validate`; chromium for the browser tests (Playwright drives it: tests/browser/)
[ "$WITH_TEST_TOOLS" = 1 ] && PACKAGES+=(vagrant chromium)
if [ "$ID" = ubuntu ]; then
  PACKAGES=("${PACKAGES[@]/bpftool/linux-tools-common}")
  PACKAGES+=("linux-tools-$(uname -r)")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] || { say "apt-get update"; apt-get update -q >/dev/null; apt_updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  say "installing ${#missing[@]} packages: ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/packetlab-apt.log 2>&1 \
    || { tail -20 /tmp/packetlab-apt.log >&2; die "apt-get install failed (full log: /tmp/packetlab-apt.log)"; }
  # the distro units of these servers are not wanted on the host: labs start their own, in namespaces
  for unit in nginx haproxy containerd; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
else
  say "system packages: all ${#PACKAGES[@]} present"
fi

# ---- kernel headers (bcc compiles against them) -------------------------------------------
KREL="$(uname -r)"
MODDIR="/lib/modules/$KREL"
if [ -e "$MODDIR/build/include/linux/kconfig.h" ] || [ -e "$MODDIR/source/include/linux/kconfig.h" ]; then
  say "kernel headers for $KREL: present"
else
  apt_update
  if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
    say "installing linux-headers-$KREL"
    apt-get install -y -q --no-install-recommends "linux-headers-$KREL" >/dev/null
  else
    case "$ID:$(dpkg --print-architecture)" in
      debian:amd64) meta=linux-headers-amd64; flavour=amd64 ;;
      debian:arm64) meta=linux-headers-arm64; flavour=arm64 ;;
      ubuntu:*)     meta=linux-headers-generic; flavour=generic ;;
      *) die "no kernel headers package for $KREL on this architecture" ;;
    esac
    apt-get install -y -q --no-install-recommends "$meta" >/dev/null
    build="$(ls -d /usr/src/linux-headers-*-"$flavour" | sort -V | tail -1)"
    source="${build%-"$flavour"}-common"; [ -d "$source" ] || source="${build%-"$flavour"}"; [ -d "$source" ] || source="$build"
    mkdir -p "$MODDIR"
    ln -sfn "$build" "$MODDIR/build"
    ln -sfn "$source" "$MODDIR/source"
    say "NOTE: no headers package matches the running kernel $KREL."
    say "      Linked the distro's newest headers instead: build -> $build, source -> $source."
    say "      This works for the course's networking programs (they use stable UAPI structs);"
    say "      tracing programs that read kernel-internal structs use BTF/CO-RE instead."
  fi
fi

# ---- bpffs and tracefs -----------------------------------------------------------------------
mountpoint -q /sys/fs/bpf || { mount -t bpf bpf /sys/fs/bpf && say "mounted bpffs at /sys/fs/bpf"; }
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true

# ---- the Python environment ----------------------------------------------------------------
want="$(cat "$REPO/pyproject.toml" "$0" | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && "$VENV/bin/python" -c "import bcc, packetlab" 2>/dev/null; then
  say "python environment .venv: up to date"
else
  # bcc (python3-bpfcc) exists only in the distro Python, hence --system-site-packages
  [ -x "$VENV/bin/python" ] || { say "creating .venv from /usr/bin/python3 (with system site packages, for bcc)"; \
    /usr/bin/python3 -m venv --system-site-packages "$VENV"; }
  say "installing packetlab and its pinned dependencies into .venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO[lab,test,docs]" \
    || die "pip install failed; check network/proxy settings (http_proxy/https_proxy) and retry"
  echo "$want" > "$STAMP"
fi

# ---- JupyterLab as a service (the Vagrant VM) -----------------------------------------------
if [ -n "$SERVICE_USER" ]; then
  TOKEN_FILE=/etc/packetlab/jupyter-token
  mkdir -p /etc/packetlab
  [ -s "$TOKEN_FILE" ] || { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TOKEN_FILE"; chmod 600 "$TOKEN_FILE"; }
  cat > /etc/systemd/system/packetlab-jupyter.service <<UNIT
[Unit]
Description=packetlab JupyterLab (labs run as root: they create namespaces and load BPF)
After=network-online.target

[Service]
Type=simple
WorkingDirectory=$REPO/labs
ExecStartPre=-/bin/mount -t bpf bpf /sys/fs/bpf
ExecStart=/bin/sh -c 'exec $VENV/bin/jupyter lab --allow-root --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.root_dir=$REPO/labs --IdentityProvider.token="\$(cat $TOKEN_FILE)"'
ExecStopPost=$VENV/bin/packetlab clean
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now packetlab-jupyter.service >/dev/null
  systemctl restart packetlab-jupyter.service
  say "JupyterLab runs as packetlab-jupyter.service; token in $TOKEN_FILE"
fi

say "done. Check the machine with: sudo $VENV/bin/packetlab doctor"
