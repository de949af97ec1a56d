#!/usr/bin/env bash
# packetlab's one installer — used by `vagrant up`, by `make lab`/`make test` on a
# bare Debian/Ubuntu host, and by CI. Idempotent: on a provisioned machine it
# only re-checks and finishes in seconds.
#
#   sudo vagrant/provision.sh [--with-test-tools] [--jupyter-service [--jupyter-ip ADDR]]
#
#   --with-test-tools       also install what `make test` needs beyond the labs (vagrant, chromium)
#   --jupyter-service       install and start a systemd unit serving JupyterLab on labs/ (the Vagrant VM uses it):
#                           as root, on the port forward's address only, token from a root-only file
#   --jupyter-ip ADDR       the address it listens on (default auto: 127.0.0.1, or the NAT address on VirtualBox)
#   --check                 only tell (exit 0/1) whether .venv matches pyproject.toml and this script
#
# Honours http_proxy / https_proxy / no_proxy for apt and pip, and, for networks that
# re-sign HTTPS or have no way to Debian/Ubuntu's archive or to PyPI (Vagrant passes the same):
#   PACKETLAB_CA_FILE=/path/ca.pem       PEM CA(s) to trust: system store (apt) and pip
#   PACKETLAB_APT_MIRROR=URL             replaces the distro archive (.../debian, .../ubuntu) in apt's sources
#   PACKETLAB_APT_SECURITY_MIRROR=URL    Debian only: replaces .../debian-security
#   PACKETLAB_PIP_INDEX_URL=URL          pip's index (a PyPI mirror, e.g. https://host/simple)
#   PACKETLAB_PIP_FIND_LINKS="URL|DIR"   wheelhouse(s), space-separated; with PACKETLAB_PIP_NO_INDEX=1 only these
#   PACKETLAB_PIP_TRUSTED_HOST=HOST      an index/wheelhouse host served over plain http or self-signed https
# Each run applies the variables given to that run: unset ones undo what an earlier run set.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$REPO/.venv/.provisioned"
WITH_TEST_TOOLS=0
JUPYTER_SERVICE=0
JUPYTER_IP=auto
CHECK_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --with-test-tools) WITH_TEST_TOOLS=1 ;;
    --jupyter-service) JUPYTER_SERVICE=1 ;;
    --jupyter-ip) JUPYTER_IP="${2:?--jupyter-ip needs an address (or auto)}"; shift ;;
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# .venv is current when its stamp is the hash of what decides its content
WANT="$(cat "$REPO/pyproject.toml" "$0" | sha256sum | cut -c1-16)"
venv_current() { [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && "$VENV/bin/python" -c "import bcc, packetlab" 2>/dev/null; }
if [ "$CHECK_ONLY" = 1 ]; then
  if venv_current; then echo ".venv: up to date"; exit 0; else echo ".venv: needs provisioning"; exit 1; fi
fi

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die()  { printf '\033[1;31mprovision.sh: %s\033[0m\n' "$*" >&2; exit 1; }
# how to carry on after fixing the cause: the Vagrantfile sets PACKETLAB_VIA=vagrant
resume() { if [ "${PACKETLAB_VIA:-}" = vagrant ]; then echo "then resume with \`vagrant provision\` (on the host, with the variables set)"
           else echo "then re-run: sudo $0"; fi; }
NET_HELP="behind a proxy: http_proxy/https_proxy; a proxy that re-signs HTTPS: PACKETLAB_CA_FILE=/path/ca.pem"

[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, BPF and packages need it): sudo $0"

# ---- supported systems -----------------------------------------------------------------
# Debian 12 (its own 6.1 kernel, what `vagrant up` gives), Ubuntu 24.04 (6.8), and those with a
# current mainline kernel. Ubuntu 22.04 only with a kernel that passes the feature probes at the
# end (its HWE kernel does; the original 5.15 lacks bpf_xdp_load_bytes and live-frames test runs).
. /etc/os-release
case "${ID}:${VERSION_ID:-}" in
  debian:12|ubuntu:22.04|ubuntu:24.04) ;;
  *) die "unsupported OS '${PRETTY_NAME:-$ID}'. packetlab provisions Debian 12 and Ubuntu 24.04 (Ubuntu 22.04 with its HWE kernel); on anything else use the VM: vagrant up" ;;
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

# ---- a CA to trust (proxies that re-sign HTTPS) ----------------------------------------------
# Split into one .crt per certificate (update-ca-certificates wants that) under our own folder.
CA_DIR=/usr/local/share/ca-certificates/packetlab
CA_COPY=/etc/packetlab/extra-ca.pem
SYSTEM_BUNDLE=/etc/ssl/certs/ca-certificates.crt
APT_CA_CONF=/etc/apt/apt.conf.d/95packetlab-ca
ca_changed=0
if [ -n "${PACKETLAB_CA_FILE:-}" ]; then
  [ -r "$PACKETLAB_CA_FILE" ] || die "PACKETLAB_CA_FILE=$PACKETLAB_CA_FILE: no such file"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$PACKETLAB_CA_FILE" \
    || die "PACKETLAB_CA_FILE=$PACKETLAB_CA_FILE is not PEM; convert it: openssl x509 -inform der -in CA.cer -out ca.pem"
  split="$(mktemp -d)"
  awk -v d="$split" '/-----BEGIN CERTIFICATE-----/ { n++; f = sprintf("%s/packetlab-%d.crt", d, n) }
                     f { print > f } /-----END CERTIFICATE-----/ { close(f); f = "" }' "$PACKETLAB_CA_FILE"
  if ! diff -rq "$split" "$CA_DIR" >/dev/null 2>&1; then
    rm -rf "$CA_DIR"; mkdir -p "$CA_DIR" /etc/packetlab; cp "$split"/*.crt "$CA_DIR/"; ca_changed=1
  fi
  rm -rf "$split"
  cat "$CA_DIR"/*.crt > "$CA_COPY"
  say "trusting $(ls "$CA_DIR" | wc -l) CA certificate(s) from $PACKETLAB_CA_FILE (system store, apt, pip)"
  # before ca-certificates is installed there is no system bundle: apt over https uses the CA alone meanwhile
  [ -s "$SYSTEM_BUNDLE" ] || echo "Acquire::https::CAInfo \"$CA_COPY\";" > "$APT_CA_CONF"
elif [ -d "$CA_DIR" ]; then
  rm -rf "$CA_DIR" "$CA_COPY"; ca_changed=1
fi
if [ "$ca_changed" = 1 ] && command -v update-ca-certificates >/dev/null; then
  update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed (run it by hand to see why)"
fi

# ---- apt mirror -----------------------------------------------------------------------------
# Rewrites the archive URIs in apt's sources from a kept original (in $ORIG_DIR), so runs are
# idempotent and unsetting the variables puts the original back.
ORIG_DIR=/etc/packetlab/apt-sources-orig
mirror_sed=()
for url in "${PACKETLAB_APT_MIRROR:-}" "${PACKETLAB_APT_SECURITY_MIRROR:-}"; do
  case "$url" in *[[:space:]\&\#\\]*) die "apt mirror URL '$url' has a space, &, # or backslash: give a plain http(s) URL" ;; esac
done
# only the distribution's own hosts (*.debian.org, *.ubuntu.com): third-party repositories stay as they are
[ -n "${PACKETLAB_APT_MIRROR:-}" ] && mirror_sed+=(-e "s#(https?|ftp)://([^[:space:]/]+\\.)?(debian\\.org|ubuntu\\.com)/(debian|ubuntu)/?([[:space:]]|\$)#${PACKETLAB_APT_MIRROR%/}\\5#g")
[ -n "${PACKETLAB_APT_SECURITY_MIRROR:-}" ] && mirror_sed+=(-e "s#(https?|ftp)://([^[:space:]/]+\\.)?debian\\.org/debian-security/?([[:space:]]|\$)#${PACKETLAB_APT_SECURITY_MIRROR%/}\\3#g")
sources_changed=0
for src in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$src" ] || continue
  orig="$ORIG_DIR/$(basename "$src")"
  from="$src"; [ -f "$orig" ] && from="$orig"
  new=""; [ ${#mirror_sed[@]} -gt 0 ] && new="$(sed -E "${mirror_sed[@]}" "$from")"
  if [ -n "$new" ] && [ "$new" != "$(cat "$from")" ]; then        # this file names the archive: point it at the mirror
    [ -f "$orig" ] || { mkdir -p "$ORIG_DIR"; cp -p "$src" "$orig"; }
    [ "$new" = "$(cat "$src")" ] || { printf '%s\n' "$new" > "$src"; sources_changed=1; }
  elif [ -f "$orig" ]; then                                         # no mirror (any more): the original back
    mv "$orig" "$src"; sources_changed=1
  fi
done
[ -n "${PACKETLAB_APT_MIRROR:-}${PACKETLAB_APT_SECURITY_MIRROR:-}" ] \
  && say "apt mirror: ${PACKETLAB_APT_MIRROR:-(archive unchanged)} ${PACKETLAB_APT_SECURITY_MIRROR:+security: $PACKETLAB_APT_SECURITY_MIRROR}"

# ---- system packages ---------------------------------------------------------------------
PACKAGES=(
  # build and load BPF
  clang llvm bpftool libbpf-dev python3-bpfcc bpfcc-tools make
  # the network itself
  iproute2 nftables iptables conntrack ethtool iputils-ping tcpdump tshark netsniff-ng iperf3 curl util-linux procps kmod
  traceroute  # module 02: the path hop by hop (UDP, ICMP and TCP probes)
  # later modules: real servers, load generators, container runtimes
  nginx haproxy wrk podman containernetworking-plugins containerd runc busybox
  # module 11c: busybox's udhcpc is the subscribers' DHCP client; Kea is the benchmark's yardstick
  kea-dhcp4-server
  # module 11b: an IPFIX collector (nfcapd) and its reader (nfdump), which the analyzer exports to; a resolver
  # (dnsmasq without its service) and dig, for real DNS traffic in the lab
  nfdump dnsmasq-base bind9-dnsutils
  # module 11a: tcpreplay sends the shipped captures (and yours) into the lab
  tcpreplay
  # python
  python3-venv python3-pip python3-dev
  # the system trust store (PACKETLAB_CA_FILE lands there; minimal images lack it)
  ca-certificates
)
# vagrant for `vagrant validate`; chromium for the browser tests (Playwright drives it: tests/browser/)
[ "$WITH_TEST_TOOLS" = 1 ] && PACKAGES+=(vagrant chromium)
# the 11b analyzer benchmark: nDPI's application labels to compare with
[ "$WITH_TEST_TOOLS" = 1 ] && PACKAGES+=(libndpi-bin)
if [ "$ID" = ubuntu ]; then
  PACKAGES=("${PACKAGES[@]/bpftool/linux-tools-common}")
  PACKAGES+=("linux-tools-$(uname -r)")
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${PACKAGES[@]}"; do
  # busybox-static (vagrant/kernel61.sh's guest needs it) replaces busybox and gives the same /bin/busybox
  [ "$p" = busybox ] && installed busybox-static && continue
  installed "$p" || missing+=("$p")
done
# apt waits for a lock held by another apt (unattended-upgrades on a fresh VM) instead of failing at once
APT_WAIT=(-o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
APT_HELP="$NET_HELP; no access to the distro archive: PACKETLAB_APT_MIRROR=URL"
apt_update() {
  [ "$apt_updated" = 1 ] && return
  say "apt-get update"
  apt-get "${APT_WAIT[@]}" update -q >/tmp/packetlab-apt-update.log 2>&1 \
    || { tail -8 /tmp/packetlab-apt-update.log >&2; die "apt-get update failed ($APT_HELP); $(resume)"; }
  # an unreachable source is only a warning to apt-get update; the install below says if it mattered
  grep -E '^(W|E): Failed to fetch' /tmp/packetlab-apt-update.log >&2 || true
  apt_updated=1
}
[ "$sources_changed" = 1 ] && apt_update
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  say "installing ${#missing[@]} packages: ${missing[*]}"
  apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends "${missing[@]}" >/tmp/packetlab-apt.log 2>&1 \
    || { tail -20 /tmp/packetlab-apt.log >&2; die "apt-get install failed (full log: /tmp/packetlab-apt.log; $APT_HELP); $(resume)"; }
  # the distro units of these servers are not wanted on the host: labs start their own, in namespaces
  for unit in nginx haproxy containerd nfdump kea-dhcp4-server; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
else
  say "system packages: all ${#PACKAGES[@]} present"
fi
# the system bundle exists now (ca-certificates' own setup picked up $CA_DIR): apt uses it again
[ -f "$APT_CA_CONF" ] && [ -s "$SYSTEM_BUNDLE" ] && rm -f "$APT_CA_CONF"

# ---- kernel headers (bcc compiles against them) -------------------------------------------
KREL="$(uname -r)"
MODDIR="/lib/modules/$KREL"
if [ -e "$MODDIR/build/include/linux/kconfig.h" ] || [ -e "$MODDIR/source/include/linux/kconfig.h" ]; then
  say "kernel headers for $KREL: present"
else
  apt_update
  if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
    say "installing linux-headers-$KREL"
    apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends "linux-headers-$KREL" >/dev/null
  else
    case "$ID:$(dpkg --print-architecture)" in
      debian:amd64) meta=linux-headers-amd64; flavour=amd64 ;;
      debian:arm64) meta=linux-headers-arm64; flavour=arm64 ;;
      ubuntu:*)     meta=linux-headers-generic; flavour=generic ;;
      *) die "no kernel headers package for $KREL on this architecture" ;;
    esac
    apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends "$meta" >/dev/null
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
# pip's settings for the network go into the venv's own pip.conf (site level): the install
# below, its isolated builds and the learner's later `pip install` in .venv all read it, and
# the machine's global pip configuration is left alone. pip bundles its own CA list (certifi),
# hence `cert` pointing at the system store that now holds PACKETLAB_CA_FILE.
pip_conf() {
  local conf="$VENV/pip.conf" lines=""
  [ -n "${PACKETLAB_CA_FILE:-}" ] && lines+="cert = $SYSTEM_BUNDLE"$'\n'
  [ -n "${PACKETLAB_PIP_INDEX_URL:-}" ] && lines+="index-url = $PACKETLAB_PIP_INDEX_URL"$'\n'
  [ "${PACKETLAB_PIP_NO_INDEX:-0}" = 1 ] && lines+="no-index = true"$'\n'
  [ -n "${PACKETLAB_PIP_FIND_LINKS:-}" ] && lines+="find-links = $PACKETLAB_PIP_FIND_LINKS"$'\n'
  [ -n "${PACKETLAB_PIP_TRUSTED_HOST:-}" ] && lines+="trusted-host = $PACKETLAB_PIP_TRUSTED_HOST"$'\n'
  if [ -n "$lines" ]; then printf '# written by vagrant/provision.sh from PACKETLAB_* variables\n[global]\n%s' "$lines" > "$conf"
  else rm -f "$conf"; fi
}
PIP_HELP="$NET_HELP; no access to PyPI: PACKETLAB_PIP_INDEX_URL=URL (a mirror) or PACKETLAB_PIP_FIND_LINKS=URL PACKETLAB_PIP_NO_INDEX=1 (a wheelhouse), PACKETLAB_PIP_TRUSTED_HOST=HOST for plain http"
[ -d "$VENV" ] && pip_conf
if venv_current; then
  say "python environment .venv: up to date"
else
  # bcc (python3-bpfcc) exists only in the distro Python, hence --system-site-packages
  [ -x "$VENV/bin/python" ] || { say "creating .venv from /usr/bin/python3 (with system site packages, for bcc)"; \
    /usr/bin/python3 -m venv --system-site-packages "$VENV"; }
  pip_conf
  say "installing packetlab and its pinned dependencies into .venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO[lab,test,docs]" 2>&1 | tee /tmp/packetlab-pip.log \
    || { hint=""
         grep -q CERTIFICATE_VERIFY_FAILED /tmp/packetlab-pip.log \
           && hint="HTTPS was not trusted: a proxy that re-signs it needs PACKETLAB_CA_FILE=/path/ca.pem. "
         die "pip install failed (log: /tmp/packetlab-pip.log). ${hint}Set what your network needs — $PIP_HELP; $(resume)"; }
  echo "$WANT" > "$STAMP"
fi

# ---- JupyterLab as a service (the Vagrant VM) -----------------------------------------------
if [ "$JUPYTER_SERVICE" = 1 ]; then
  # shellcheck source=vagrant/jupyter-service.sh
  . "$REPO/vagrant/jupyter-service.sh"
  install_jupyter_service "$REPO" "$VENV" "$JUPYTER_IP"
  say "JupyterLab runs as packetlab-jupyter.service, listening on $JUPYTER_IP (auto: the port forward's address); token in /etc/packetlab/jupyter-token (root only)"
fi

# ---- the kernel: what each module needs, probed (never read from the version number) ---------
say "probing kernel $KREL for the features each module needs"
if ! "$VENV/bin/python" -m packetlab.module_readiness; then
  if [ "$ID:$VERSION_ID" = ubuntu:22.04 ]; then
    die "Ubuntu 22.04's kernel $KREL lacks what the modules above need. Install its HWE kernel (apt-get install linux-generic-hwe-22.04), reboot into it and re-run; or use the VM: vagrant up"
  fi
  say "WARNING: kernel $KREL lacks what the modules marked 'not ready' above need; they will stop and say so."
  say "         Supported: Debian 12's own 6.1, Ubuntu 24.04's 6.8, a current mainline kernel — or the VM: vagrant up"
fi

say "done. Check the machine with: sudo $VENV/bin/packetlab doctor"
