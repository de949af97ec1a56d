#!/usr/bin/env bash
# Run packetlab's tests on the Vagrant VM's kernel (Debian 12: 6.1) from a developer's checkout.
# For developers, not CI: the labs must work on the kernel `vagrant up` gives, and this is the
# quick way to try the current tree there. Needs a running VM (`vagrant up`).
#
#   vagrant/run-in-vm.sh                      # doctor + the kernel-sensitive tests (below)
#   vagrant/run-in-vm.sh tests/kernel/test_07_xdp.py -k redirect -x  # doctor + these pytest arguments
#   vagrant/run-in-vm.sh --sh '.venv/bin/packetlab doctor'     # any command, as root in /packetlab
#   vagrant/run-in-vm.sh --no-doctor ...      # skip the doctor
#   vagrant/run-in-vm.sh --no-sync ...        # don't copy the tree first
#   make test-vm TESTS="tests/kernel/test_06_verifier_diary.py -x"  # the same through make
#
# It copies this tree into the VM (`vagrant rsync`: /packetlab there, without .venv/.git),
# then runs, as root: `packetlab doctor` and pytest with the host guard. The VM's .venv is
# not rebuilt here: if pyproject.toml or provision.sh changed, it says so; run
# `vagrant provision` then (with the same proxy/CA variables as for `vagrant up`).
set -euo pipefail

DEFAULT_TESTS=(tests/kernel/test_06_verifier_diary.py tests/kernel/test_07_xdp.py tests/kernel/test_00_getting_started.py)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export VAGRANT_CHECKPOINT_DISABLE=1

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31mrun-in-vm.sh: %s\033[0m\n' "$*" >&2; exit 1; }

doctor=1 sync=1 shell_cmd=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-doctor) doctor=0 ;;
    --no-sync) sync=0 ;;
    --sh) shell_cmd="${2:?--sh needs a command}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || set -- "${DEFAULT_TESTS[@]}"

command -v vagrant >/dev/null || die "vagrant is not installed (the VM is made by \`vagrant up\`, see README.md)"
state="$(vagrant status --machine-readable 2>/dev/null | awk -F, '$3 == "state" { print $4 }')"
[ "$state" = running ] || die "the VM is not running (state: ${state:-unknown}); start it with \`vagrant up\` from $(pwd)"

if [ "$sync" = 1 ]; then
  say "copying the tree into the VM (vagrant rsync)"
  vagrant rsync >/dev/null || die "vagrant rsync failed (run \`vagrant rsync\` to see why)"
fi

# everything below runs in the VM, as root, from the synced tree
q() { printf '%q ' "$@"; }
remote="cd /packetlab && export PYTHONDONTWRITEBYTECODE=1 && "
remote+="{ .venv/bin/python -c 'import packetlab' 2>/dev/null || { echo 'the VM has no .venv: run \`vagrant provision\`' >&2; exit 1; }; } && "
remote+="{ bash vagrant/provision.sh --check >/dev/null || echo 'NOTE: pyproject.toml or provision.sh changed since the VM was provisioned: run \`vagrant provision\` for the new dependencies' >&2; } && "
remote+="echo \"kernel: \$(uname -r)\" && "
if [ -n "$shell_cmd" ]; then
  remote+="$shell_cmd"
else
  [ "$doctor" = 1 ] && remote+="{ .venv/bin/packetlab doctor || true; } && "
  remote+=".venv/bin/python -m pytest -p packetlab.testing.host_guard -p no:cacheprovider $(q "$@")"
fi
say "in the VM: ${shell_cmd:-pytest $*}"
exec vagrant ssh --no-tty -c "sudo bash -c $(printf '%q' "$remote")"
