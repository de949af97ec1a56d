# shellcheck shell=bash
# JupyterLab as a systemd service in the VM (sourced by provision.sh --jupyter-service).
#
# The server runs as root (lab kernels create namespaces and load BPF in their own process)
# and is kept to the host's user by vagrant/jupyter_server_config.py: it listens only on the
# port forward's address, and reads its token from a root-only file — never from argv.

# jupyter_token_file FILE: create FILE with a fresh random token unless it holds one; always
# leave it root-only. Written under umask 077 to a temp file then renamed: never readable by others.
jupyter_token_file() {
  local file="$1" dir tmp
  dir="$(dirname "$file")"
  (umask 022; mkdir -p "$dir")
  if [ -s "$file" ] && [ ! -L "$file" ]; then
    chmod 600 "$file"  # (a token file from before this rule: make it root-only now)
    return 0
  fi
  tmp="$(umask 077; mktemp "$dir/.jupyter-token.XXXXXX")"
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp")
  mv -f "$tmp" "$file"
}

# jupyter_unit REPO VENV TOKEN_FILE IP: the unit file's text (IP: an address, or auto).
jupyter_unit() {
  local repo="$1" venv="$2" token_file="$3" ip="$4"
  cat <<UNIT
[Unit]
Description=packetlab JupyterLab (root: lab kernels create namespaces and load BPF; listens on the port forward's address only)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory=$repo/labs
Environment=PACKETLAB_JUPYTER_IP=$ip
Environment=PACKETLAB_JUPYTER_TOKEN_FILE=$token_file
Environment=PACKETLAB_JUPYTER_ROOT_DIR=$repo/labs
ExecStartPre=-/bin/mount -t bpf bpf /sys/fs/bpf
ExecStart=$venv/bin/jupyter lab --config=$repo/vagrant/jupyter_server_config.py
ExecStopPost=$venv/bin/packetlab clean
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
}

# install_jupyter_service REPO VENV IP: token, unit, (re)start.
install_jupyter_service() {
  local repo="$1" venv="$2" ip="$3" token_file=/etc/packetlab/jupyter-token
  jupyter_token_file "$token_file"
  jupyter_unit "$repo" "$venv" "$token_file" "$ip" > /etc/systemd/system/packetlab-jupyter.service
  systemctl daemon-reload
  systemctl enable packetlab-jupyter.service >/dev/null
  systemctl restart packetlab-jupyter.service
}
