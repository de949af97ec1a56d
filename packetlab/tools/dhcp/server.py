"""The slow path's decisions (RFC 2131 section 4.3): which address, which reply, and what the cache learns.

No sockets here: `DhcpServer.handle` takes a parsed request and returns the reply
frame (or None, when the RFC says to stay silent), changing the lease store and
the fast-path cache on the way. Store first, then cache: a lease the kernel
answers for is always one the store has, so a crash in between leaves at worst a
lease that the next start's warm-up puts in the cache.

* DISCOVER: the client's own address (bound, offered, or released earlier and
  still unclaimed), else the address it asks for if free, else the next free
  one, else the address unused longest; held in memory for `offer_hold` seconds
  (an offer is not written to the store: a restart forgets it, as Kea's does).
* REQUEST with option 54 (SELECTING): ours -> bind and ACK (the lease goes into
  the cache); another server's -> forget our offer, stay silent.
* REQUEST with option 50 and no 54 (INIT-REBOOT): our record of that address
  for this client -> ACK; an address not of this pool -> NAK; no record -> silent.
* REQUEST with ciaddr (RENEWING/REBINDING): the bound lease -> extend, ACK; else NAK.
* RELEASE: ``released`` (address remembered for this client), out of the cache.
* DECLINE: the address goes into quarantine, the lease and its cache entry go.
* INFORM and anything else: no reply (not needed by a broadband gateway's clients).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.config import DhcpConfig, PoolConfig
from packetlab.tools.dhcp.store import BOUND, EXPIRED, RELEASED, LeaseRow, LeaseStore

DECLINE_QUARANTINE = 600.0  # seconds a declined address is not offered


class Cache(Protocol):
    """What the server needs of the fast path: `FastPath`, or a stand-in in a unit test."""

    def put(self, mac: str, vlan: int, ip: str, pool: int, expires: float) -> None: ...

    def remove(self, mac: str, vlan: int) -> bool: ...


class NoCache:
    """No fast path: the server alone (what a unit test or a plain DHCP server has)."""

    def put(self, mac: str, vlan: int, ip: str, pool: int, expires: float) -> None:
        pass

    def remove(self, mac: str, vlan: int) -> bool:
        return False


@dataclass
class Outcome:
    """What one request did (for logs and metrics)."""

    request: str
    reply: str | None = None
    ip: str | None = None
    note: str = ""
    frame: bytes | None = None
    lease: str | None = None  # what happened to the lease: grant, renew, release, decline (None: nothing)
    expires: float | None = None  # the bound lease's new expiry (wall clock)


@dataclass
class DhcpServer:
    config: DhcpConfig
    store: LeaseStore
    server_mac: str
    cache: Cache = field(default_factory=NoCache)
    clock: Callable[[], float] = time.time
    _cursor: dict[str, int] = field(default_factory=dict)
    _offers: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)  # (mac, vlan) -> (ip, until)
    _offered_ips: dict[str, tuple[str, int]] = field(default_factory=dict)  # ip -> (mac, vlan)

    def params(self, pool: PoolConfig) -> wire.ReplyParams:
        return wire.ReplyParams(
            self.config.server_id, self.server_mac, str(pool.subnet.netmask), pool.router, pool.dns, pool.lease_time
        )

    # ---- the state machine ----------------------------------------------------------------
    def handle(self, msg: wire.Message) -> Outcome:
        out = Outcome(msg.type_name)
        found = self.config.pool_for_vlan(msg.vlan)
        if msg.op != 1 or found is None:
            out.note = "no pool for this VLAN" if found is None else "not a BOOTREQUEST"
            return out
        idx, pool = found
        now = self.clock()
        if msg.type == wire.DISCOVER:
            return self._discover(msg, idx, pool, now, out)
        if msg.type == wire.REQUEST:
            return self._request(msg, idx, pool, now, out)
        if msg.type == wire.RELEASE:
            row = self.store.get(msg.chaddr, msg.vlan)
            if row and row.ip == msg.ciaddr:
                self.store.set_state(msg.chaddr, msg.vlan, RELEASED)
                self.cache.remove(msg.chaddr, msg.vlan)
                out.ip, out.note, out.lease = row.ip, "released", "release"
            return out
        if msg.type == wire.DECLINE:
            addr = msg.requested
            row = self.store.get(msg.chaddr, msg.vlan)
            if addr and row and row.ip == addr:
                self.store.decline(addr, now + DECLINE_QUARANTINE)
                self.store.delete(msg.chaddr, msg.vlan)
                self.cache.remove(msg.chaddr, msg.vlan)
                out.ip, out.note, out.lease = addr, "declined: quarantined", "decline"
            return out
        out.note = "not served"
        return out

    def _reply(self, out: Outcome, msg: wire.Message, mtype: int, ip: str, pool: PoolConfig) -> Outcome:
        out.reply, out.ip = wire.TYPE_NAMES[mtype], ip
        out.frame = wire.reply_frame(msg, mtype, ip, self.params(pool))
        return out

    def _discover(self, msg: wire.Message, idx: int, pool: PoolConfig, now: float, out: Outcome) -> Outcome:
        row = self.store.get(msg.chaddr, msg.vlan)
        ip = self._allocate(msg, row, pool, now)
        if ip is None:
            out.note = f"pool {pool.name} is exhausted"
            return out
        if not (row and row.ip == ip and row.state == BOUND and row.expires > now):
            # an offer is a promise for offer_hold seconds, kept in memory (as Kea does): nothing is
            # written until the REQUEST, and a restart simply forgets it
            self._forget_offer(msg.chaddr, msg.vlan)
            self._offers[(msg.chaddr, msg.vlan)] = (ip, now + self.config.offer_hold)
            self._offered_ips[ip] = (msg.chaddr, msg.vlan)
        return self._reply(out, msg, wire.OFFER, ip, pool)

    def _forget_offer(self, mac: str, vlan: int) -> None:
        held = self._offers.pop((mac, vlan), None)
        if held is not None:
            self._offered_ips.pop(held[0], None)

    def _offer_of(self, mac: str, vlan: int, now: float) -> str | None:
        held = self._offers.get((mac, vlan))
        return held[0] if held and held[1] > now else None

    def _free(self, ip: str, mac: str, vlan: int, now: float) -> bool:
        """Nobody else holds `ip`: no lease row, and no live offer to another client."""
        if self.store.by_ip(ip) is not None:
            return False
        holder = self._offered_ips.get(ip)
        if holder is None or holder == (mac, vlan):
            return True
        return self._offer_of(*holder, now) != ip

    def _allocate(self, msg: wire.Message, row: LeaseRow | None, pool: PoolConfig, now: float) -> str | None:
        declined = self.store.declined(now)
        if row and pool.contains(row.ip) and row.ip not in declined:
            return row.ip  # its own (also a released or expired one nobody took)
        offered = self._offer_of(msg.chaddr, msg.vlan, now)
        if offered and pool.contains(offered):
            return offered  # a repeated DISCOVER: the same offer
        wanted = msg.requested
        if (
            wanted
            and pool.contains(wanted)
            and wanted not in declined
            and self._free(wanted, msg.chaddr, msg.vlan, now)
        ):
            return wanted
        # a cursor walks the pool from where the last allocation stopped: one indexed lookup per
        # address tried, not a scan of every lease per DISCOVER
        start = self._cursor.get(pool.name, 0)
        for step in range(pool.size):
            n = (start + step) % pool.size
            ip = str(pool.first + n)
            if ip not in declined and self._free(ip, msg.chaddr, msg.vlan, now):
                self._cursor[pool.name] = n + 1
                return ip
        for old in self.store.reclaimable(pool.name, now):
            if old.ip not in declined:
                return old.ip
        return None

    def _bind(self, msg: wire.Message, idx: int, pool: PoolConfig, ip: str, now: float, out: Outcome) -> Outcome:
        expires = now + pool.lease_time
        old = self.store.get(msg.chaddr, msg.vlan)
        out.lease = (
            "renew" if old is not None and old.state == BOUND and old.ip == ip and old.expires > now else "grant"
        )
        out.expires = expires
        self._forget_offer(msg.chaddr, msg.vlan)
        self.store.put(LeaseRow(msg.chaddr, msg.vlan, ip, pool.name, BOUND, expires, now, msg.hostname))
        self.cache.put(msg.chaddr, msg.vlan, ip, idx, expires)
        return self._reply(out, msg, wire.ACK, ip, pool)

    def _nak(self, msg: wire.Message, pool: PoolConfig, out: Outcome, why: str) -> Outcome:
        out.note = why
        return self._reply(out, msg, wire.NAK, wire.ZERO_IP, pool)

    def _request(self, msg: wire.Message, idx: int, pool: PoolConfig, now: float, out: Outcome) -> Outcome:
        row = self.store.get(msg.chaddr, msg.vlan)
        if msg.server_id is not None:  # SELECTING
            if msg.server_id != self.config.server_id:
                self._forget_offer(msg.chaddr, msg.vlan)
                out.note = f"the client chose server {msg.server_id}"
                return out
            if msg.requested and msg.requested == self._offer_of(msg.chaddr, msg.vlan, now):
                return self._bind(msg, idx, pool, msg.requested, now, out)
            if row and row.state == BOUND and msg.requested == row.ip:
                return self._bind(msg, idx, pool, row.ip, now, out)
            return self._nak(msg, pool, out, "no offer of that address")
        if msg.ciaddr == wire.ZERO_IP:  # INIT-REBOOT
            if not msg.requested:
                out.note = "REQUEST without address"
                return out
            if not pool.contains(msg.requested):
                return self._nak(msg, pool, out, f"{msg.requested} is not on this network")
            if row is None or row.ip != msg.requested:
                holder = self.store.by_ip(msg.requested)
                if holder is None and row is None:
                    out.note = "no record of this client: silent (RFC 2131 4.3.2)"
                    return out
                if holder is not None and holder.mac != msg.chaddr and holder.active(now):
                    return self._nak(msg, pool, out, f"{msg.requested} belongs to another client")
                if row is not None and row.ip != msg.requested:
                    return self._nak(msg, pool, out, f"the client's address is {row.ip}")
            if msg.requested in self.store.declined(now):
                return self._nak(msg, pool, out, "address in quarantine")
            return self._bind(msg, idx, pool, msg.requested, now, out)
        # RENEWING (unicast) or REBINDING (broadcast)
        if row and row.ip == msg.ciaddr and row.state in (BOUND, EXPIRED, RELEASED):
            holder = self.store.by_ip(msg.ciaddr)
            if holder is None or holder.mac == msg.chaddr:
                return self._bind(msg, idx, pool, msg.ciaddr, now, out)
        if ipaddress.IPv4Address(msg.ciaddr) not in pool.subnet:
            return self._nak(msg, pool, out, f"{msg.ciaddr} is not on this network")
        return self._nak(msg, pool, out, "no lease for this address")

    # ---- keeping store and cache in step --------------------------------------------------
    def warm_up(self, cache: Cache) -> int:
        """Put every bound, unexpired lease of the store into the cache (daemon start)."""
        now, n = self.clock(), 0
        for row in self.store.bound():
            found = self.config.pool_named(row.pool)
            if found and row.expires > now:
                cache.put(row.mac, row.vlan, row.ip, found[0], row.expires)
                n += 1
        return n

    def sweep(
        self,
        renewed: Callable[[str, int], float | None] | None = None,
        moved: list[tuple[LeaseRow, float]] | None = None,
    ) -> list[LeaseRow]:
        """Expire what is due. A lease the fast path renewed (its ACKs move the cache entry's
        expiry on) is first moved on in the store too (appended to `moved` with its new expiry).
        Returns the leases that expired."""
        now = self.clock()
        for key in [k for k, (_, until) in self._offers.items() if until <= now]:
            self._forget_offer(*key)
        gone = []
        for row in self.store.due(now):
            later = renewed(row.mac, row.vlan) if renewed and row.state == BOUND else None
            if later is not None and later > now:
                self.store.set_state(row.mac, row.vlan, BOUND, later)
                if moved is not None:
                    moved.append((row, later))
                continue
            self.store.set_state(row.mac, row.vlan, EXPIRED)
            self.cache.remove(row.mac, row.vlan)
            gone.append(row)
        return gone
