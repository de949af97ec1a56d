"""The parts of the CNI specification (v1.0) a plugin must get exactly right.

The spec is at https://www.cni.dev/docs/spec/ — this module holds what both our
plugin and our runtime driver need: the versions we speak, the well-known error
codes, the error object, the environment a runtime passes, and the result
format (including the small differences between 0.3.x/0.4.0 and 1.0.0).

Nothing here touches the network: it is pure data handling, unit-tested.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.topo.names import IFNAMSIZ, check_name

CURRENT_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")

# Well-known error codes (CNI spec 1.0, "Error"): 1-99 are reserved by the spec,
# 100+ may be used by plugins.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
# plugin-specific codes of packetlab
SETUP_FAILED = 100  # the kernel refused a step while wiring the pod (rolled back)
IPAM_EXHAUSTED = 101  # our IPAM has no free address left in the range
CHECK_FAILED = 102  # CHECK found the pod's network different from prevResult
PLUGIN_NOT_FOUND = 103  # a delegated plugin (IPAM) is not in any CNI_PATH entry

ERROR_NAMES = {
    INCOMPATIBLE_VERSION: "incompatible CNI version",
    UNSUPPORTED_FIELD: "unsupported field",
    UNKNOWN_CONTAINER: "container unknown or does not exist",
    INVALID_ENVIRONMENT: "invalid environment",
    IO_FAILURE: "I/O failure",
    DECODING_FAILURE: "failed to decode content",
    INVALID_CONFIG: "invalid network config",
    TRY_AGAIN_LATER: "try again later",
    SETUP_FAILED: "setup failed",
    IPAM_EXHAUSTED: "address pool exhausted",
    CHECK_FAILED: "check failed",
    PLUGIN_NOT_FOUND: "plugin not found",
}


class CniError(Exception):
    """An error as the spec shapes it: {"cniVersion", "code", "msg", "details"}."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_dict(self, version: str = CURRENT_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        extra = f" ({self.details})" if self.details else ""
        return f"CNI error {self.code} [{ERROR_NAMES.get(self.code, 'plugin error')}]: {self.msg}{extra}"


@dataclass
class Environment:
    """The CNI_* variables a runtime sets for one invocation."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    raw_args: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Read and validate CNI_* variables; missing ones give error code 4."""
        env = os.environ if environ is None else environ
        command = env.get("CNI_COMMAND", "")
        if not command:
            raise CniError(
                INVALID_ENVIRONMENT,
                "CNI_COMMAND is not set",
                "a runtime sets CNI_COMMAND to ADD, DEL, CHECK or VERSION",
            )
        if command not in COMMANDS:
            raise CniError(
                INVALID_ENVIRONMENT,
                f"unknown CNI_COMMAND {command!r}",
                "CNI_COMMAND must be one of " + ", ".join(COMMANDS),
            )
        out = cls(
            command=command,
            container_id=env.get("CNI_CONTAINERID", ""),
            netns=env.get("CNI_NETNS", ""),
            ifname=env.get("CNI_IFNAME", ""),
            args=parse_cni_args(env.get("CNI_ARGS", "")),
            path=[p for p in env.get("CNI_PATH", "").split(":") if p],
            raw_args=env.get("CNI_ARGS", ""),
        )
        if command == "VERSION":
            return out
        required = {"CNI_CONTAINERID": out.container_id, "CNI_IFNAME": out.ifname, "CNI_PATH": out.path}
        if command in ("ADD", "CHECK"):
            required["CNI_NETNS"] = out.netns  # DEL tolerates an empty CNI_NETNS (spec 1.0)
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise CniError(
                INVALID_ENVIRONMENT,
                f"required environment variables missing: {', '.join(missing)}",
                f"CNI_COMMAND={command} needs CNI_CONTAINERID, CNI_IFNAME, CNI_PATH"
                + (" and CNI_NETNS" if command != "DEL" else ""),
            )
        try:
            check_name(out.ifname, "CNI_IFNAME")
        except PacketlabError:
            raise CniError(
                INVALID_ENVIRONMENT,
                f"CNI_IFNAME {out.ifname!r} is not a valid interface name",
                f"interface names have at most {IFNAMSIZ} letters, digits, '-', '_' or '.', and no '/'",
            ) from None
        return out


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS is 'K1=V1;K2=V2' (e.g. K8S_POD_NAME=web;K8S_POD_NAMESPACE=default)."""
    out = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS item {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def parse_config(raw: bytes | str) -> dict[str, Any]:
    """Decode the network configuration from stdin (error code 6 on bad JSON)."""
    try:
        conf = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(DECODING_FAILURE, "the network configuration on stdin is not valid JSON", str(exc)) from None
    if not isinstance(conf, dict):
        raise CniError(
            DECODING_FAILURE, "the network configuration must be a JSON object", f"got {type(conf).__name__}"
        )
    return conf


def check_version(conf: Mapping[str, Any]) -> str:
    """The config's cniVersion if we support it, else error code 1."""
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(
            INVALID_CONFIG, "the network configuration has no cniVersion", f'set "cniVersion": "{CURRENT_VERSION}"'
        )
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cniVersion {version!r} is not supported",
            "supported: " + ", ".join(SUPPORTED_VERSIONS),
        )
    return version


def version_result(requested: str | None = None) -> dict[str, Any]:
    """The VERSION answer: which spec versions this plugin speaks."""
    return {"cniVersion": CURRENT_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}


def convert_result(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """Render a result for `version`: 0.3.x/0.4.0 carry "version" on each IP, 1.0.0 does not."""
    out = json.loads(json.dumps(result))
    out["cniVersion"] = version
    for ip in out.get("ips", []):
        if version == "1.0.0":
            ip.pop("version", None)
        else:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    return out


def validate_result(result: Mapping[str, Any]) -> list[str]:
    """Problems with a result's shape (used by tests and by the runtime driver)."""
    problems = []
    if not isinstance(result.get("cniVersion"), str):
        problems.append("cniVersion missing")
    interfaces = result.get("interfaces", [])
    for i, iface in enumerate(interfaces):
        if not iface.get("name"):
            problems.append(f"interfaces[{i}] has no name")
        mac = iface.get("mac", "")
        if mac and len(mac.split(":")) != 6:
            problems.append(f"interfaces[{i}].mac {mac!r} is not a MAC address")
    for i, ip in enumerate(result.get("ips", [])):
        try:
            ipaddress.ip_interface(ip["address"])
            if "/" not in ip["address"]:
                raise ValueError("no prefix length")
        except (KeyError, ValueError) as exc:
            problems.append(f"ips[{i}].address invalid: {exc}")
        if "interface" in ip and not 0 <= ip["interface"] < len(interfaces):
            problems.append(f"ips[{i}].interface {ip['interface']} is not an index into interfaces")
        if "gateway" in ip:
            try:
                ipaddress.ip_address(ip["gateway"])
            except ValueError as exc:
                problems.append(f"ips[{i}].gateway invalid: {exc}")
    for i, route in enumerate(result.get("routes", [])):
        try:
            ipaddress.ip_network(route["dst"], strict=False)
        except (KeyError, ValueError) as exc:
            problems.append(f"routes[{i}].dst invalid: {exc}")
    return problems
