"""A tiny container image built locally from the host's busybox — no registry.

A container image is only a root filesystem (layers, as tar files) plus JSON
that says how to run it. `rootfs_tar` assembles the filesystem: /bin/busybox
with one symlink per applet we use, the shared libraries it needs if it is not
statically linked (found with ldd), and minimal /etc files. `podman import`
takes that tar directly; `oci_archive` wraps it into an OCI image layout
(oci-layout, index.json, manifest, config, one layer blob — all addressed by
sha256) for ``ctr image import``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from packetlab.errors import MissingRequirement

BUSYBOX = "/bin/busybox"
APPLETS = [
    "sh",
    "ip",
    "ping",
    "nc",
    "httpd",
    "wget",
    "sleep",
    "cat",
    "echo",
    "hostname",
    "ls",
    "ifconfig",
    "route",
    "true",
    "false",
    "timeout",
    "kill",
    "ps",
    "mkdir",
    "printf",
    "grep",
    "seq",
]


def _needed_libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if "not a dynamic executable" in out.stdout + out.stderr or "statically linked" in out.stdout + out.stderr:
        return []
    return [m for m in re.findall(r"(/\S+\.so[.\d]*)", out.stdout) if os.path.exists(m)]


def rootfs_tar(out: str | os.PathLike) -> Path:
    """Write a busybox root filesystem as a tar file (deterministic member order)."""
    if not os.path.exists(BUSYBOX):
        raise MissingRequirement(
            "busybox is not installed",
            cause=f"{BUSYBOX} is missing",
            fix="sudo apt-get install busybox (vagrant/provision.sh does)",
        )
    out = Path(out)

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "run", "var", "var/www", "root", "lib", "lib64"):
            add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        with open(BUSYBOX, "rb") as f:
            add_bytes(tar, "bin/busybox", f.read(), 0o755)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        made = {"lib", "lib64"}
        for lib in _needed_libraries(BUSYBOX):
            rel = lib.lstrip("/")
            parts = Path(rel).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in made:
                    add_dir(tar, d)
                    made.add(d)
            with open(os.path.realpath(lib), "rb") as f:
                add_bytes(tar, rel, f.read(), 0o755)
        add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_bytes(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_bytes(tar, "var/www/index.html", b"hello from a packetlab container\n")
    return out


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}", len(data)


def oci_archive(rootfs: str | os.PathLike, out: str | os.PathLike, ref: str) -> Path:
    """An OCI image archive (for ``ctr image import``) with `rootfs` as its only layer."""
    out = Path(out)
    layout = out.with_suffix(".layout")
    shutil.rmtree(layout, ignore_errors=True)
    raw = Path(rootfs).read_bytes()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer_digest, layer_size = _blob(layout, gzip.compress(raw, mtime=0))
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_size = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}
        ],
    }
    manifest_digest, manifest_size = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    with tarfile.open(out, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
    shutil.rmtree(layout, ignore_errors=True)
    return out
