"""Module 11b: application detection by content (HTTP, DNS, TLS, SSH, SMTP, FTP), never by port."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName, TLS_Ext_SupportedVersion_CH
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

from packetlab.tools.analyzer.apps import TCP, UDP, detect, dns, tls


def test_http_request_and_response():
    info = detect(b"POST /api HTTP/1.1\r\nHost: lab.test:8443\r\nContent-Length: 0\r\n\r\n", TCP)
    assert info is not None and info.app == "http"
    assert info.fields == {"method": "POST", "path": "/api", "host": "lab.test:8443"}
    resp = detect(b"HTTP/1.0 404 Not Found\r\nServer: nginx\r\n\r\n", TCP)
    assert resp is not None and resp.fields["status"] == 404


def test_dns_query_answer_and_rcode():
    q = dns(bytes(DNS(id=9, rd=1, qd=DNSQR(qname="www.lab.test", qtype="AAAA"))))
    assert q is not None and q.fields["qr"] == "query" and q.fields["query"] == "www.lab.test"
    assert q.fields["qtype"] == "AAAA"
    a = detect(
        bytes(DNS(id=9, qr=1, qd=DNSQR(qname="a.lab.test"), an=DNSRR(rrname="a.lab.test", rdata="10.0.0.5"))), UDP
    )
    assert a is not None and a.fields["answers"] == ["10.0.0.5"] and a.fields["rcode"] == "NOERROR"
    nx = detect(bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname="nope.lab.test"))), UDP)
    assert nx is not None and nx.fields["rcode"] == "NXDOMAIN"


def test_dns_over_tcp_has_a_length_prefix():
    msg = bytes(DNS(id=4, rd=1, qd=DNSQR(qname="big.lab.test", qtype="TXT")))
    info = detect(len(msg).to_bytes(2, "big") + msg, TCP)
    assert info is not None and info.app == "dns" and info.fields["qtype"] == "TXT"


def test_tls_client_hello_sni_and_version():
    hello = TLS(
        msg=[
            TLSClientHello(
                ext=[
                    TLS_Ext_ServerName(servernames=[ServerName(servername=b"secure.lab.test")]),
                    TLS_Ext_SupportedVersion_CH(versions=[0x3A3A, 0x0304, 0x0303]),  # GREASE first
                ]
            )
        ]
    )
    info = tls(bytes(hello))
    assert info is not None and info.fields == {
        "handshake": "client_hello",
        "sni": "secure.lab.test",
        "version": "TLS 1.3",
    }
    head = tls(bytes(hello)[:62])  # what a 128-byte sampled packet head holds of it
    assert head is not None and head.fields == {"handshake": "client_hello", "truncated": True}
    old = tls(bytes(TLS(msg=[TLSClientHello(version=0x0301, ext=[])])))
    assert old is not None and old.fields["version"] == "TLS 1.0" and old.fields["sni"] == ""


@pytest.mark.parametrize(
    ("payload", "app", "field", "value"),
    [
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "ssh", "software", "OpenSSH_9.2p1"),
        (
            b"220 mail.lab.test ESMTP Postfix (Debian/GNU)\r\n",
            "smtp",
            "banner",
            "mail.lab.test ESMTP Postfix (Debian/GNU)",
        ),
        (b"220 (vsFTPd 3.0.3)\r\n", "ftp", "banner", "(vsFTPd 3.0.3)"),
        (b"EHLO client.lab.test\r\n", "smtp", "command", "EHLO client.lab.test"),
        (b"USER anonymous\r\n", "ftp", "command", "USER"),
    ],
)
def test_banners(payload, app, field, value):
    info = detect(payload, TCP)
    assert info is not None and info.app == app and info.fields[field] == value


@pytest.mark.parametrize(
    "payload",
    [b"\x00" * 40, b"hello world\r\n", b"220 welcome\r\n", b"GET / HTTP/2\r\n", b"\x16\x03\x01\x00\x05\x0b", b""],
)
def test_random_bytes_get_no_label(payload):
    assert detect(payload, TCP) is None and detect(payload, UDP) is None
