#!/usr/bin/env bash
# Run packetlab's tests under Debian 12's own kernel (6.1, what `vagrant up` gives) on this machine,
# without Vagrant: this machine's filesystem is booted read-only under the 6.1 kernel with qemu
# (virtme-ng), and the tests run there file by file. For developers, not CI, not `make test`.
#
#   sudo vagrant/kernel61.sh                                  # tests/kernel, every file
#   sudo vagrant/kernel61.sh tests/kernel/test_07_xdp.py labs/07-xdp.ipynb   # these files (dirs expand)
#   sudo vagrant/kernel61.sh 'tests/browser/test_jupyterlab_runall.py::test_run_all_in_jupyterlab[07-xdp]'  # one test
#   sudo vagrant/kernel61.sh --timeout 3600 tests/kernel      # per-file limit in seconds (default 2400)
#   sudo vagrant/kernel61.sh --out DIR ...                    # results + logs there, not under /tmp (default build/kernel61)
#   sudo vagrant/kernel61.sh --no-doctor ...                  # skip `packetlab doctor` in the guest
#   make test-kernel61 [TESTS='tests/kernel/test_06_verifier_diary.py labs/06-ebpf-fundamentals.ipynb']
#
# No KVM: qemu emulates the CPU (TCG), so everything is 10-30x slower: tests/kernel takes hours.
# The guest runs a clone of this checkout's *committed* HEAD (OUT/tree; uncommitted edits are not
# in it), with this checkout's .venv. Each file gets its own pytest run with a time limit; a line per
# file (result, seconds) goes to OUT/results.txt as it finishes, its output to OUT/logs/, and the
# guest's kernel console (boot, oopses, a panic that ends the run early) to OUT/console.log. The guest
# sees the host's files read-only (except OUT) and has its own kernel, so its namespaces, modules
# and sysctls are its own: nothing it does reaches this machine's network.
# Installs (once): the newest Debian linux-image-6.1.0-N-amd64 and its headers (bcc), qemu-system-x86,
# busybox-static (apt), and virtme-ng (pinned in pyproject.toml's `vm` extra) into .venv; for
# tests/browser, chromium and playwright (provision.sh --with-test-tools).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31mkernel61.sh: %s\033[0m\n' "$*" >&2; exit 1; }

# kernel modules the labs use that Debian builds as modules. Loaded before the tests start, so a
# module that the kernel would load on demand mid-run does not show up as "host state changed"
# (new sysctls) to the host guard.
MODULES=(veth bridge br_netfilter 8021q vxlan geneve ipip ip_gre ip6_tunnel sit tun dummy ifb macvlan ipvlan vrf
  nf_tables nft_chain_nat nft_ct nft_nat nft_masq nft_redir nft_limit nft_counter nft_log nft_reject nft_reject_inet
  nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_queue nft_numgen nft_hash nft_quota nft_connlimit nft_tproxy nft_socket
  nft_compat nfnetlink_queue nfnetlink_log nf_conntrack nf_conntrack_netlink nf_nat nf_conntrack_ftp nf_nat_ftp
  nf_flow_table nf_flow_table_inet nft_flow_offload nft_objref nft_dup_netdev nft_fwd_netdev
  ip_tables iptable_filter iptable_nat iptable_mangle iptable_raw ip6_tables ip6table_filter ip6table_nat
  x_tables xt_conntrack xt_MASQUERADE xt_nat xt_comment xt_multiport xt_mark xt_tcpudp xt_LOG xt_state
  xt_REDIRECT xt_set xt_statistic xt_addrtype ip_set ip_set_hash_ip ip_set_hash_net ipt_REJECT ip6t_REJECT
  sch_netem sch_tbf sch_htb sch_fq sch_fq_codel sch_prio sch_sfq sch_ingress sch_red sch_cake sch_pie sch_codel
  cls_bpf cls_u32 cls_flower cls_matchall cls_basic act_bpf act_mirred act_gact act_police act_skbedit act_pedit
  act_csum act_vlan nfnetlink ip_vs ip_vs_rr wireguard af_packet tcp_bbr)

guest() {   # runs inside the VM: OUT, TIMEOUT, DOCTOR; the test files are listed in OUT/files.txt
  local out="$1" timeout="$2" doctor="$3"; shift 3
  mapfile -t files <"$out/files.txt"   # not on the command line: the kernel's is at most 2048 bytes
  local tree="$out/tree"
  echo "guest kernel: $(uname -r)"
  for m in "${MODULES[@]}"; do modprobe -q "$m" 2>/dev/null || echo "note: no module $m on $(uname -r)"; done
  mountpoint -q /sys/fs/bpf || mount -t bpf bpffs /sys/fs/bpf
  mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
  mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
  ip link set lo up
  # the guest's /tmp is an overlay on the host's files over 9p, where shared writable mmap fails
  # (trafgen: "Cannot setup shared variable!"); a real machine's /tmp is a local filesystem
  mount -t tmpfs -o mode=1777 tmpfs /tmp
  mkdir -p /tmp/vmhome /run/netns
  # servers get 10x their usual time to start: the emulated CPU is 10-30x slower (topo/servers.py)
  export HOME=/tmp/vmhome PYTHONPATH="$tree" PYTHONDONTWRITEBYTECODE=1 PATH="$VENV/bin:$PATH" PACKETLAB_STARTUP_SCALE=10
  # the browser tests' Chromium: its own stderr (why it exited) goes into the test's log via Playwright
  export DEBUG=pw:browser
  cd "$tree"
  if [ "$doctor" = 1 ]; then
    "$VENV/bin/packetlab" doctor >"$out/doctor.txt" 2>&1 || true
    echo "doctor: $out/doctor.txt"; cat "$out/doctor.txt"
  fi
  local f name t0 rc secs result extra
  for f in "${files[@]}"; do
    name="$(echo "$f" | tr '/' '_')"
    extra=()
    case "$f" in *.ipynb) extra=(--nbval-lax --nbval-current-env --nbval-cell-timeout="$timeout" --nbval-kernel-startup-timeout=600) ;; esac
    t0=$(date +%s)
    set +e
    timeout -k 30 "$timeout" "$VENV/bin/python" -m pytest -p packetlab.testing.host_guard -p no:cacheprovider \
      -q -rfEs "${extra[@]}" "$f" >"$out/logs/$name.log" 2>&1
    rc=$?
    set -e
    secs=$(( $(date +%s) - t0 ))
    case $rc in 0) result=pass ;; 5) result=no-tests ;; 124|137) result=TIMEOUT ;; *) result="FAIL(rc=$rc)" ;; esac
    summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped).* in [0-9.]+s' "$out/logs/$name.log" | tail -1 | tr -d '=' | sed 's/^ *//')"
    printf '%-55s %-12s %6.1f min  %s\n' "$f" "$result" "$(awk -v s="$secs" 'BEGIN{print s/60}')" "$summary" | tee -a "$out/results.txt"
  done
}

if [ "${1:-}" = --guest ]; then shift; guest "$@"; exit 0; fi

timeout=2400 doctor=1 out="$REPO/build/kernel61"
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout="${2:?--timeout needs seconds}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    --no-doctor) doctor=0 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || set -- tests/kernel
out="$(realpath -m "$out")"
case "$out" in /tmp | /tmp/*)   # the guest mounts its own tmpfs on /tmp (see guest()), hiding the host's
  die "--out $out: the guest mounts a fresh /tmp over the host's, so it would not see the tree or keep the results there; use a folder outside /tmp (default build/kernel61)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages; the guest runs the tests as root): sudo $0"
[ -x "$VENV/bin/python" ] || die "no .venv: run \`make provision\` (or sudo vagrant/provision.sh) first"
browser=0   # the browser tests drive the host's chromium and .venv's playwright (the guest sees the host's files)
printf '%s\n' "$@" | grep -qE '^(\./)?tests(/browser|/?$)' && browser=1
test_tools=()
if [ $browser = 1 ] && ! { [ -x /usr/bin/chromium ] && "$VENV/bin/python" -c 'import playwright' 2>/dev/null; }; then
  test_tools=(--with-test-tools)
fi
# the guest has no network: if .venv is stale (pyproject.toml changed), `make lab` in it would pip install and fail
if [ ${#test_tools[@]} -gt 0 ] || ! bash "$REPO/vagrant/provision.sh" --check >/dev/null; then
  say "provisioning .venv${test_tools:+, chromium and playwright for the browser tests}: provision.sh ${test_tools[*]}"
  bash "$REPO/vagrant/provision.sh" "${test_tools[@]}" >/dev/null || die "provision.sh ${test_tools[*]} failed"
fi

# ---- what it needs ------------------------------------------------------------------------
kimg="$(ls /boot/vmlinuz-6.1.0-*-amd64 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$kimg" ]; then
  say "installing Debian 12's 6.1 kernel (for the guest only: this machine keeps booting its own)"
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null || true
  pkg="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)"
  [ -n "$pkg" ] || die "apt offers no linux-image-6.1.0-N-amd64 (is this Debian 12 with bookworm's archive in apt's sources?)"
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$pkg" >/dev/null
  kimg="$(ls /boot/vmlinuz-6.1.0-*-amd64 | sort -V | tail -1)"
fi
krel="${kimg#/boot/vmlinuz-}"
need=()
[ -d "/usr/src/linux-headers-$krel" ] || need+=("linux-headers-$krel")
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)   # virtme-ng's guest init needs a static one
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if ! [ -x "$VENV/bin/vng" ]; then
  pin="$("$VENV/bin/python" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml","rb"))["project"]["optional-dependencies"]["vm"])' 2>/dev/null)" \
    || die "pyproject.toml has no \`vm\` extra naming virtme-ng"
  say "installing $pin into .venv"
  (cd "$REPO" && "$VENV/bin/python" -m pip install -q $pin) || die "pip install $pin failed"
fi

qemu_cpu=()
if [ $browser = 1 ]; then
  # a guest CPU without AVX: with qemu's emulated AVX (-cpu max), Chromium's GPU process segfaults
  # and Chromium aborts mid-lab ("GPU process isn't usable. Goodbye."); without it, it renders
  qemu_cpu=(--qemu-opts="-cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16")
fi

# ---- the tree the guest runs ---------------------------------------------------------------
mkdir -p "$out/logs"
if [ -d "$out/tree/.git" ]; then
  git -C "$out/tree" pull -q --ff-only || die "$out/tree: git pull failed (delete it to start afresh)"
else
  git clone -q "$REPO" "$out/tree"
fi
ln -sfn "$VENV" "$out/tree/.venv"
say "guest tree: $out/tree at $(git -C "$out/tree" log -1 --format='%h %s' | cut -c1-80)"

files=()
for p in "$@"; do
  p="${p#./}"
  if [ -d "$out/tree/$p" ]; then
    while IFS= read -r f; do files+=("${f#"$out/tree/"}"); done \
      < <(find "$out/tree/$p" -maxdepth 1 \( -name 'test_*.py' -o -name '*.ipynb' \) | sort)
  elif [ -e "$out/tree/${p%%::*}" ]; then files+=("$p")   # a file, or one test of it (path::test[id])
  else die "${p%%::*}: not in the committed tree ($out/tree)"; fi
done
[ ${#files[@]} -gt 0 ] || die "no test files in: $*"

printf '%s\n' "${files[@]}" >"$out/files.txt"
echo "# $(date -u +%FT%TZ) kernel $krel, TCG, per-file limit ${timeout}s, tree $(git -C "$out/tree" rev-parse --short HEAD)" >>"$out/results.txt"
say "booting $krel under qemu (TCG, no KVM: slow) for ${#files[@]} file(s); per-file lines: $out/results.txt"
t0=$(date +%s)
# nice: the emulated CPUs are two busy host threads for hours
PATH="$VENV/bin:$PATH" nice -n 19 "$VENV/bin/vng" -r "$kimg" --disable-kvm --user root --memory 4G --cpus 2 --verbose "${qemu_cpu[@]}" \
  --rwdir "$out" --cwd "$out/tree" -- \
  "bash $(printf '%q ' "$out/tree/vagrant/kernel61.sh" --guest "$out" "$timeout" "$doctor")" \
  </dev/null 2>&1 | tee -a "$out/console.log"   # a pipe: qemu reopens /proc/self/fd/1 and would truncate a log file given as stdout
echo "# done in $(( ($(date +%s) - t0) / 60 )) min" >>"$out/results.txt"
say "summary ($out/results.txt):"
sed -n "/^# .*tree $(git -C "$out/tree" rev-parse --short HEAD)/,\$p" "$out/results.txt" | tail -n $(( ${#files[@]} + 1 ))
bad=$(tail -n "$(( ${#files[@]} + 1 ))" "$out/results.txt" | grep -cE ' (FAIL|TIMEOUT)' || true)
echo "$(( ${#files[@]} - bad ))/${#files[@]} files passed"
[ "$bad" = 0 ]
