"""Application detection by content, not by port: HTTP on 8443 is still HTTP.

Each detector looks at the first payload bytes of one direction of a flow and
answers with an `AppInfo` (the protocol and what it said: HTTP method, host and
status; DNS query, answers and rcode; TLS SNI and version; SSH, SMTP and FTP
banners) or None. They are strict on purpose — a DNS guess must parse as a whole
DNS message, a TLS guess must be a handshake record — because a loose detector
labels random bytes. What they cannot see is said in the lesson: encrypted
payloads beyond the handshake, a ClientHello split over segments, QUIC.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import Any

TCP, UDP = 6, 17

_HTTP_REQUEST = re.compile(rb"^(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) (\S+) HTTP/1\.[01]\r?\n")
_HTTP_RESPONSE = re.compile(rb"^HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?\r?\n")
_HTTP_HOST = re.compile(rb"\r?\nHost:[ \t]*([^\r\n]+)", re.I)
_SSH = re.compile(rb"^SSH-(\d\.\d+)-([^\r\n ]+)")
_BANNER_220 = re.compile(rb"^220[ -]([^\r\n]*)")
_SMTP_WORDS = re.compile(rb"E?SMTP|Postfix|Exim|Sendmail|mail", re.I)
_FTP_WORDS = re.compile(rb"FTP", re.I)
_SMTP_COMMAND = re.compile(rb"^(EHLO|HELO|MAIL FROM:|RCPT TO:|STARTTLS)\b", re.I)
_FTP_COMMAND = re.compile(rb"^(USER|PASS|RETR|STOR|PASV|EPSV|SYST|FEAT) ?", re.I)

TLS_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 255: "ANY"}


@dataclass
class AppInfo:
    """What one payload said: the application protocol and its fields."""

    app: str
    fields: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{k}={v}" for k, v in self.fields.items() if v not in (None, "", [])]
        return f"{self.app} " + " ".join(parts)


# ---- HTTP, SSH, SMTP, FTP: text protocols -------------------------------------------------------
def http(payload: bytes) -> AppInfo | None:
    m = _HTTP_REQUEST.match(payload)
    if m:
        host = _HTTP_HOST.search(payload)
        return AppInfo(
            "http",
            {
                "method": m.group(1).decode(),
                "path": m.group(2).decode(errors="replace"),
                "host": host.group(1).decode(errors="replace").strip() if host else "",
            },
        )
    m = _HTTP_RESPONSE.match(payload)
    if m:
        return AppInfo("http", {"status": int(m.group(1)), "reason": (m.group(2) or b"").decode(errors="replace")})
    return None


def ssh(payload: bytes) -> AppInfo | None:
    m = _SSH.match(payload)
    return AppInfo("ssh", {"version": m.group(1).decode(), "software": m.group(2).decode()}) if m else None


def banner(payload: bytes) -> AppInfo | None:
    """A '220' greeting (SMTP or FTP, told apart by its words) or a client's first command."""
    m = _BANNER_220.match(payload)
    if m:
        text = m.group(1)
        if _FTP_WORDS.search(text):
            return AppInfo("ftp", {"banner": text.decode(errors="replace")})
        if _SMTP_WORDS.search(text):
            return AppInfo("smtp", {"banner": text.decode(errors="replace")})
        return None
    if _SMTP_COMMAND.match(payload):
        return AppInfo("smtp", {"command": payload.split(b"\r\n")[0].decode(errors="replace")})
    if _FTP_COMMAND.match(payload) and payload.endswith(b"\r\n") and len(payload) < 200:
        return AppInfo("ftp", {"command": payload.split(b" ")[0].strip().decode(errors="replace")})
    return None


# ---- DNS ----------------------------------------------------------------------------------------
class _Bad(Exception):
    pass


def _name(msg: bytes, off: int, depth: int = 0) -> tuple[str, int]:
    """A (possibly compressed) domain name at `off`: (name, offset after it in the original place)."""
    labels: list[str] = []
    end = None
    for _ in range(128):
        if off >= len(msg):
            raise _Bad("name runs past the message")
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or depth > 10:
                raise _Bad("bad compression pointer")
            ptr = (n & 0x3F) << 8 | msg[off + 1]
            if ptr >= off:
                raise _Bad("compression pointer points forward")
            rest, _ = _name(msg, ptr, depth + 1)
            labels.append(rest)
            end = off + 2
            break
        if n > 63 or off + 1 + n > len(msg):
            raise _Bad("label too long")
        labels.append(msg[off + 1 : off + 1 + n].decode("ascii", errors="replace"))
        off += 1 + n
    else:
        raise _Bad("too many labels")
    name = ".".join(x for x in labels if x)
    return name, end if end is not None else off


def dns(payload: bytes) -> AppInfo | None:
    """A whole DNS message (UDP payload): query name and type, answers, rcode; None unless it parses."""
    if len(payload) < 17:
        return None
    ident, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", payload)
    opcode = flags >> 11 & 0xF
    if not 1 <= qd <= 4 or opcode > 5 or an > 100 or flags & 0x40:  # Z bit must be zero
        return None
    try:
        qname, off = _name(payload, 12)
        if off + 4 > len(payload):
            return None
        qtype, qclass = struct.unpack_from("!HH", payload, off)
        if qclass & 0x7FFF not in (1, 3, 4, 255):
            return None
        off += 4
        answers = []
        for _ in range(an):
            _owner, off = _name(payload, off)
            if off + 10 > len(payload):
                raise _Bad("answer cut short")
            rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", payload, off)
            off += 10
            rdata = payload[off : off + rdlen]
            if len(rdata) < rdlen:
                raise _Bad("rdata cut short")
            if rtype == 1 and rdlen == 4:
                answers.append(str(ipaddress.IPv4Address(rdata)))
            elif rtype == 28 and rdlen == 16:
                answers.append(str(ipaddress.IPv6Address(rdata)))
            elif rtype in (5, 2, 12):
                answers.append(_name(payload, off)[0])
            off += rdlen
    except _Bad:
        return None
    response = bool(flags & 0x8000)
    fields: dict[str, Any] = {
        "id": ident,
        "qr": "response" if response else "query",
        "query": qname,
        "qtype": DNS_TYPES.get(qtype, str(qtype)),
    }
    if response:
        fields["rcode"] = DNS_RCODES.get(flags & 0xF, str(flags & 0xF))
        fields["answers"] = answers
    return AppInfo("dns", fields)


# ---- TLS ----------------------------------------------------------------------------------------
def _grease(v: int) -> bool:
    return v & 0x0F0F == 0x0A0A


def tls(payload: bytes) -> AppInfo | None:
    """A TLS handshake record: ClientHello (SNI, offered version) or ServerHello (chosen version)."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[1] != 3 or payload[2] > 4:
        return None
    hs_type = payload[5]
    if hs_type not in (1, 2):
        return None
    body = payload[9:]
    if len(body) < 2 + 32 + 1:  # cut before the session id: a sampled packet head (128 bytes) often is
        return AppInfo("tls", {"handshake": "client_hello" if hs_type == 1 else "server_hello", "truncated": True})
    try:
        (legacy,) = struct.unpack_from("!H", body, 0)
        off = 2 + 32
        sid = body[off]
        off += 1 + sid
        if hs_type == 1:
            (ncs,) = struct.unpack_from("!H", body, off)
            off += 2 + ncs
            off += 1 + body[off]
        else:
            off += 2 + 1  # the chosen suite and compression method
        sni, versions = "", []
        if off + 2 <= len(body):
            (ext_len,) = struct.unpack_from("!H", body, off)
            off += 2
            end = min(off + ext_len, len(body))
            while off + 4 <= end:
                etype, elen = struct.unpack_from("!HH", body, off)
                data = body[off + 4 : off + 4 + elen]
                off += 4 + elen
                if etype == 0 and len(data) >= 5 and data[2] == 0:
                    (nlen,) = struct.unpack_from("!H", data, 3)
                    sni = data[5 : 5 + nlen].decode("ascii", errors="replace")
                elif etype == 43:
                    raw = data[1:] if hs_type == 1 else data
                    versions = [v for (v,) in struct.iter_unpack("!H", raw[: len(raw) // 2 * 2]) if not _grease(v)]
    except (struct.error, IndexError):  # cut inside the hello: the record header already said TLS
        return AppInfo("tls", {"handshake": "client_hello" if hs_type == 1 else "server_hello", "truncated": True})
    version = max(versions) if versions else legacy
    fields: dict[str, Any] = {"handshake": "client_hello" if hs_type == 1 else "server_hello"}
    if hs_type == 1:
        fields["sni"] = sni
    fields["version"] = TLS_VERSIONS.get(version, hex(version))
    return AppInfo("tls", fields)


# ---- the dispatcher -----------------------------------------------------------------------------
_TCP_DETECTORS = (http, tls, ssh, banner)
_UDP_DETECTORS = (dns,)


def detect(payload: bytes, proto: int) -> AppInfo | None:
    """The application in `payload` (the first bytes one side sent), by content only."""
    if not payload:
        return None
    if proto == UDP:
        for fn in _UDP_DETECTORS:
            info = fn(payload)
            if info:
                return info
        return None
    if proto == TCP:
        for fn in _TCP_DETECTORS:
            info = fn(payload)
            if info:
                return info
        if len(payload) > 2 and struct.unpack_from("!H", payload)[0] == len(payload) - 2:
            return dns(payload[2:])  # DNS over TCP: a 2-byte length, then the message
    return None
