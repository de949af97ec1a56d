"""Third-party browser assets the docs site serves itself, pinned here and only here.

The course site must work with no internet (a learner on a plane, CI's sandbox):
mkdocs-material would otherwise load ``mermaid.min.js`` from a CDN the first time a
page has a diagram, and every diagram would stay raw text. So the file is vendored:
committed under ``modules/assets/vendor/`` (the docs_dir) with its licence, and
checked against the sha256 pinned below at every docs build, so what is served is
byte for byte the registry's file. A committed copy (rather than a download at
provision time) keeps ``make docs`` working on a machine without node or network,
such as a fresh Vagrant VM.

To move to another version (needs ``npm``, which only talks to the npm registry)::

    python -m packetlab.docsite.vendor --update 11.17.2

prints the new sha256 for ``PIN`` after writing the files; a plain
``python -m packetlab.docsite.vendor`` re-fetches the pinned version and verifies it.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packetlab.paths import REPO_ROOT

ROOT = REPO_ROOT
DOCS_DIR = ROOT / "modules"


@dataclass(frozen=True)
class Vendored:
    """One file taken from an npm package: where it comes from and where the site serves it."""

    package: str
    version: str
    member: str  # path inside the npm tarball
    sha256: str  # of ``member`` at ``version``
    site_path: str  # relative to docs_dir: what pages load

    @property
    def path(self) -> Path:
        return DOCS_DIR / self.site_path

    @property
    def license_path(self) -> Path:
        return self.path.parent / "LICENSE"


# mkdocs-material 9.x renders ```mermaid fences with the global `mermaid` of mermaid 11
# (it would fetch mermaid@11 from unpkg when the global is missing).
MERMAID = Vendored(
    package="mermaid",
    version="11.17.2",
    member="package/dist/mermaid.min.js",
    sha256="581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8",
    site_path="assets/vendor/mermaid/mermaid.min.js",
)
PINNED = (MERMAID,)


class VendorError(RuntimeError):
    """A vendored asset is missing or differs from its pin."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def verify(asset: Vendored) -> None:
    """Raise VendorError naming the fix when the committed copy is absent or not the pinned bytes."""
    where = _shown(asset.path)
    fix = f"restore it with `git checkout {where}` or `python -m packetlab.docsite.vendor`"
    if not asset.path.is_file():
        raise VendorError(f"{where} is missing ({asset.package} {asset.version}): {fix}")
    got = sha256_of(asset.path)
    if got != asset.sha256:
        raise VendorError(
            f"{where} is not {asset.package} {asset.version} (sha256 {got}, pinned {asset.sha256}): {fix}"
        )


def _member(tar: tarfile.TarFile, name: str, package: str) -> bytes:
    """The bytes of file `name` in an npm tarball, or VendorError naming what is missing."""
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise VendorError(f"the npm package {package} has no file {name}: is the vendored member's path still right?")
    return f.read()


def fetch(asset: Vendored, version: str | None = None) -> str:
    """Fetch ``asset`` (at ``version``, default the pin) with ``npm pack``; write it and its licence.

    Returns the sha256 of the written file. With the pinned version the bytes must
    match the pin, otherwise nothing is written.
    """
    version = version or asset.version
    with tempfile.TemporaryDirectory() as tmp:
        try:
            out = (
                subprocess.run(
                    ["npm", "pack", "--silent", f"{asset.package}@{version}", "--pack-destination", tmp],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
        except FileNotFoundError:
            raise VendorError(
                "npm is not installed; the committed copy is what the site uses, "
                "refreshing it needs npm (apt-get install npm)"
            ) from None
        except subprocess.CalledProcessError as e:
            raise VendorError(f"npm pack {asset.package}@{version} failed: {e.stderr.strip()}") from None
        with tarfile.open(Path(tmp) / out) as tar:
            data = _member(tar, asset.member, asset.package)
            licence = _member(tar, "package/LICENSE", asset.package)
    got = hashlib.sha256(data).hexdigest()
    if version == asset.version and got != asset.sha256:
        raise VendorError(
            f"npm served {asset.package}@{version} {asset.member} with sha256 {got}, "
            f"pinned {asset.sha256}: not writing it"
        )
    asset.path.parent.mkdir(parents=True, exist_ok=True)
    asset.path.write_bytes(data)
    asset.license_path.write_bytes(licence)
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m packetlab.docsite.vendor", description=__doc__.split("\n\n")[0])
    ap.add_argument("--update", metavar="VERSION", help="fetch this mermaid version and print its sha256 for PIN")
    args = ap.parse_args(argv)
    try:
        got = fetch(MERMAID, args.update)
    except VendorError as e:
        print(f"docs_vendor: {e}", file=sys.stderr)
        return 1
    if args.update and args.update != MERMAID.version:
        print(
            f"wrote mermaid {args.update}; now set MERMAID.version={args.update!r}, sha256={got!r} "
            f"in {Path(__file__).relative_to(ROOT)}"
        )
    else:
        print(f"mermaid {MERMAID.version}: {_shown(MERMAID.path)} matches the pin")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
