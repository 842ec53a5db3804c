#!/usr/bin/python3
"""Broadcast fan-out: N viewers of one item, K bids, and how every viewer fared.

Opens --connections WebSocket viewers of one fresh item on the broadcast
service, places --bids bids through the gateway, one every --interval seconds,
and measures for every (bid, viewer) pair the time from just before the bid's
HTTP request was sent to the moment that viewer received the event. Reports
latency p50/p90/p99/max and, per viewer, events missed, duplicated and out of
order (by the item's seq), after waiting up to --timeout for stragglers.

  /usr/bin/python3 websocket_fanout_test.py --connections 1000 --bids 100 --interval 0.1
  /usr/bin/python3 websocket_fanout_test.py --connections 5000 --bids 50 --interval 0.1 \
      --gateway http://127.0.0.1:8080 --broadcast ws://127.0.0.1:8081

Sending time and receiving time come from the same monotonic clock of this
process, so no clock synchronisation is involved. The viewers run on one
Python event loop: at thousands of viewers and tens of events per second the
loop itself adds latency, which is then part of the number (the Go load
program cmd/fanout measures beyond that). Exit status is 1 when any
viewer missed, duplicated or reordered an event, or failed to connect.

Runs on Debian's python3-websockets (10.4); loopback targets only unless
--allow-remote.
"""

import argparse
import array
import asyncio
import base64
import hashlib
import http.client
import json
import math
import multiprocessing
import os
import resource
import sys
import time
import uuid
from decimal import Decimal
from urllib.parse import urlparse

import websockets

CENT = Decimal("0.01")
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
MAX_CONNECTIONS = 50000
MAX_BIDS = 100000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=100, help="viewers to open (default 100)")
    p.add_argument("--bids", type=int, default=50, help="bids to place (default 50)")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between bids (default 0.1)")
    p.add_argument("--gateway", default="http://127.0.0.1:8080", help="API gateway base URL")
    p.add_argument("--broadcast", default="ws://127.0.0.1:8081", help="broadcast service base URL (ws:// or http://)")
    p.add_argument("--item", default=None, help="item id (default: a fresh fanout_<random> item)")
    p.add_argument("--users", type=int, default=20, help="bidder ids to rotate through, to stay under per-user rate limits")
    p.add_argument("--increment", default="1.00", help="amount each bid adds (default 1.00)")
    p.add_argument("--connect-concurrency", type=int, default=200, help="viewers connecting at once (default 200)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for connections and for the last events (default 10)")
    p.add_argument("--client", choices=("raw", "websockets"), default="raw",
                   help="viewer implementation: a minimal RFC 6455 client (default; cheap enough for "
                        "10,000 viewers) or the websockets library (cross-check)")
    p.add_argument("--reconnect", type=float, default=0.0,
                   help="share of viewers (0..1) that drop halfway through the bids and come back with "
                        "since_seq (raw client); their events must still arrive exactly once, in order")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="viewer processes, each with its own event loop (default: one per CPU)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-remote", action="store_true", help="allow targets other than loopback")
    args = p.parse_args(argv)
    errs = []
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        errs.append(f"--connections must be 1..{MAX_CONNECTIONS}")
    if not 1 <= args.bids <= MAX_BIDS:
        errs.append(f"--bids must be 1..{MAX_BIDS}")
    if not 0 <= args.interval <= 60 or args.bids * args.interval > 3600:
        errs.append("--interval must be 0..60 and bids*interval at most an hour")
    if args.users < 1 or args.connect_concurrency < 1 or args.timeout <= 0 or not 1 <= args.processes <= 64:
        errs.append("--users, --connect-concurrency and --timeout must be positive, --processes 1..64")
    if not 0 <= args.reconnect <= 1 or (args.reconnect > 0 and args.client != "raw"):
        errs.append("--reconnect must be 0..1 and needs --client raw")
    for name in ("gateway", "broadcast"):
        host = urlparse(getattr(args, name)).hostname
        if host is None:
            errs.append(f"--{name} {getattr(args, name)!r} is not a URL")
        elif host not in LOOPBACK and not args.allow_remote:
            errs.append(f"--{name} {getattr(args, name)!r}: loopback only (pass --allow-remote to override)")
    try:
        args.increment = Decimal(args.increment).quantize(CENT)
    except ArithmeticError:
        errs.append("--increment must be a decimal amount")
    if errs:
        p.error("; ".join(errs))
    args.item = args.item or f"fanout_{uuid.uuid4().hex[:12]}"
    b = urlparse(args.broadcast)
    scheme = {"http": "ws", "https": "wss"}.get(b.scheme, b.scheme)
    args.ws_url = f"{scheme}://{b.netloc}{b.path.rstrip('/')}/ws?item_id={args.item}"
    return args


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending sequence; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def amount_key(value):
    """The same text for 200, 200.0 and 200.00, from JSON parsed as Decimal."""
    return f"{Decimal(str(value)).quantize(CENT)}"


def encode(fields):
    """JSON object with Decimal values as exact two-decimal numbers (never floats)."""
    parts = []
    for k, v in fields.items():
        parts.append(f"{json.dumps(k)}:{f'{v:.2f}' if isinstance(v, Decimal) else json.dumps(v)}")
    return "{" + ",".join(parts) + "}"


class Gateway:
    """A keep-alive HTTP client for the gateway, used from one thread at a time."""

    def __init__(self, base, timeout):
        u = urlparse(base)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, self.prefix + path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, json.loads(data, parse_float=Decimal) if data else {}
            except (http.client.HTTPException, ConnectionError, OSError) as e:
                self.conn.close()
                self.conn = None
                # A kept-alive connection the server closed meanwhile: retry once
                # on a new one, but only before anything could have been applied.
                if attempt == 2 or not isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    raise
            except ValueError:
                return resp.status, {}
        raise RuntimeError("unreachable")

    def ensure_item(self, item, increment):
        status, data = self.request("GET", f"/api/v1/items/{item}")
        if status == 404:
            status, data = self.request("POST", "/api/v1/items", encode(
                {"id": item, "name": f"Fan-out test {item}", "starting_price": increment, "min_increment": increment}))
            if status not in (200, 201):
                raise SystemExit(f"create item {item}: HTTP {status} {data}")
        elif status != 200:
            raise SystemExit(f"get item {item}: HTTP {status} {data}")
        return data


class Viewer:
    """One viewer's sequence accounting, without keeping every message."""

    __slots__ = ("snapshot_seq", "last_seq", "seen", "unique", "duplicates", "out_of_order", "close_code", "error",
                 "reconnected")

    def __init__(self):
        self.snapshot_seq = None
        self.last_seq = 0
        # seen[i] marks seq snapshot_seq+1+i as received: a byte per event,
        # rather than a set of ints, keeps 10,000 viewers affordable.
        self.seen = bytearray()
        self.unique = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.close_code = None
        self.error = None
        self.reconnected = False

    def contiguous(self):
        """The highest seq up to which nothing is missing."""
        i = self.seen.find(0)
        return self.snapshot_seq + (len(self.seen) if i < 0 else i)

    def event(self, seq):
        i = seq - self.snapshot_seq - 1
        if i < 0:
            # Older than the snapshot: the snapshot already covered it.
            self.duplicates += 1
            return
        if i >= len(self.seen):
            self.seen.extend(b"\0" * (i + 1 - len(self.seen) + 64))
        if self.seen[i]:
            self.duplicates += 1
            return
        self.seen[i] = 1
        self.unique += 1
        if seq < self.last_seq:
            self.out_of_order += 1
        self.last_seq = max(self.last_seq, seq)


class RawViewer(asyncio.Protocol):
    """A minimal RFC 6455 client for one viewer.

    The websockets library spends tens of microseconds of Python per message
    (frames, queues, futures); at 10,000 viewers and 10 events per second
    that alone saturates a core and the measured latency becomes this
    script's backlog. This protocol parses the server's unmasked frames
    straight from the socket buffer, answers pings and closes, and hands
    each text message to the group with the time its bytes arrived.
    """

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, group, viewer, key):
        self.group = group
        self.viewer = viewer
        self.key = key
        self.buf = bytearray()
        self.upgraded = False
        self.fragments = None
        self.transport = None
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self.closed = loop.create_future()

    @classmethod
    async def connect(cls, group, viewer, since=None):
        u = urlparse(group.args.ws_url + (f"&since_seq={since}" if since is not None else ""))
        key = base64.b64encode(os.urandom(16))
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: cls(group, viewer, key), u.hostname, u.port or 80)
        target = u.path + ("?" + u.query if u.query else "")
        proto.transport.write(
            f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        try:
            await proto.opened
        except BaseException:
            proto.transport.abort()
            raise
        return proto

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if exc is not None and self.viewer.error is None and self.viewer.close_code is None:
            self.viewer.error = repr(exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data):
        now = time.perf_counter()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[:end + 4]
            want = base64.b64encode(hashlib.sha1(self.key + self.GUID).digest()).decode()
            if not head.startswith("HTTP/1.1 101") or want not in head:
                self.opened.set_exception(ConnectionError(f"handshake refused: {head.splitlines()[0]!r}"))
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, hdr = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, hdr = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80:
                self.fail("server sent a masked frame")
                return
            if n - pos < hdr + length:
                break
            payload = bytes(buf[pos + hdr:pos + hdr + length])
            pos += hdr + length
            self.frame(b0 & 0x80, b0 & 0x0F, payload, now)
        del buf[:pos]

    def frame(self, fin, opcode, payload, now):
        if opcode in (1, 2):
            if fin:
                self.group.handle(self.viewer, payload, now)
            else:
                self.fragments = bytearray(payload)
        elif opcode == 0 and self.fragments is not None:
            self.fragments += payload
            if fin:
                msg, self.fragments = bytes(self.fragments), None
                self.group.handle(self.viewer, msg, now)
        elif opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.viewer.close_code = code
            self.send(8, payload[:2])
            self.transport.close()
        elif opcode == 9:
            self.send(10, payload)

    def send(self, opcode, payload):
        """A masked frame, as clients must send (payloads here are < 126 bytes)."""
        if self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def fail(self, why):
        self.viewer.error = why
        self.transport.abort()

    async def close(self):
        self.send(8, (1000).to_bytes(2, "big"))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 1)
        except asyncio.TimeoutError:
            self.transport.abort()


class ViewerGroup:
    """A share of the viewers on one event loop, in its own process.

    Python handles a few thousand WebSocket messages per second per process;
    spreading viewers over processes keeps this script from being the thing
    measured. Receipt times come from time.perf_counter, which on Linux is
    the system-wide monotonic clock, so they compare with the parent's send
    times.
    """

    def __init__(self, args, count, pipe):
        self.args = args
        self.count = count
        self.pipe = pipe
        self.viewers = []
        self.receipts = {}  # amount text -> array of receipt times
        self.parsed = {}  # message -> (type, seq, amount key)
        self.reconnected = 0
        self.reconnect_failures = 0
        self.connect_failures = 0
        self.connect_errors = []
        self.no_snapshot = 0

    def handle(self, v, raw, now):
        """One text message for viewer v, received at now."""
        # Every viewer gets the same bytes for an event (the service encodes
        # it once), so each distinct message is parsed once per process.
        parsed = self.parsed.get(raw)
        if parsed is None:
            # Floats are exact enough to key two-decimal amounts.
            msg = json.loads(raw)
            kind = msg.get("type")
            seq = msg.get("seq")
            parsed = (kind, int(seq) if seq is not None else None,
                      amount_key(msg.get("amount", 0)) if kind == "bid" else None)
            if len(self.parsed) > 4096:
                self.parsed.clear()
            self.parsed[raw] = parsed
        kind, seq, key = parsed
        if kind == "snapshot":
            if v.snapshot_seq is None:
                v.snapshot_seq = seq or 0
                v.last_seq = v.snapshot_seq
            return
        if v.snapshot_seq is None:
            # The contract says a snapshot comes first.
            self.no_snapshot += 1
            v.snapshot_seq = 0
        if seq is None or kind in ("viewers", "presence"):
            return
        v.event(seq)
        # Replayed events arrive late by design; latency is for live ones.
        if key is not None and not v.reconnected:
            r = self.receipts.get(key)
            if r is None:
                r = self.receipts[key] = array.array("d")
            r.append(now)

    async def view(self, ws, v):
        try:
            async for raw in ws:
                self.handle(v, raw, time.perf_counter())
        except websockets.ConnectionClosed as e:
            v.close_code = e.code
        except Exception as e:  # noqa: BLE001 - reported per viewer
            v.error = repr(e)

    async def connect_all(self):
        sem = asyncio.Semaphore(self.args.connect_concurrency)

        async def one():
            v = Viewer()
            async with sem:
                try:
                    if self.args.client == "raw":
                        ws = await asyncio.wait_for(RawViewer.connect(self, v), self.args.timeout)
                    else:
                        ws = await asyncio.wait_for(websockets.connect(
                            self.args.ws_url, max_size=1 << 20, ping_interval=None, close_timeout=1,
                            compression=None, open_timeout=self.args.timeout), self.args.timeout)
                except Exception as e:  # noqa: BLE001 - counted
                    self.connect_failures += 1
                    if len(self.connect_errors) < 5:
                        self.connect_errors.append(repr(e))
                    return None
            self.viewers.append(v)
            if self.args.client == "raw":
                return ws, ws.closed, v
            return ws, asyncio.create_task(self.view(ws, v)), v
        results = await asyncio.gather(*(one() for _ in range(self.count)))
        return [r for r in results if r is not None]

    async def until(self, timeout, done):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            await asyncio.sleep(0.05)

    async def next_message(self):
        while not self.pipe.poll():
            await asyncio.sleep(0.02)
        return self.pipe.recv()

    async def watch_lag(self, lags):
        """How late this loop wakes up: when it is as late as the measured
        latency, this script, not the server, is the bottleneck."""
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async def reconnect(self, conns):
        """Drops a share of the viewers and brings them back with since_seq,
        as a viewer on a flaky network does; the seq accounting then shows
        whether catch-up filled the gap without duplicates."""
        k = round(len(conns) * self.args.reconnect)
        dropped = conns[:k]
        for ws, _, _ in dropped:
            ws.transport.abort()
        # Stay away for a few events, so there is something to catch up on.
        await asyncio.sleep(max(0.2, 3 * self.args.interval))
        sem = asyncio.Semaphore(self.args.connect_concurrency)

        async def back(i):
            _, _, v = conns[i]
            v.reconnected = True
            async with sem:
                try:
                    ws = await asyncio.wait_for(RawViewer.connect(self, v, since=v.contiguous()), self.args.timeout)
                except Exception as e:  # noqa: BLE001 - counted
                    self.reconnect_failures += 1
                    if len(self.connect_errors) < 5:
                        self.connect_errors.append("reconnect: " + repr(e))
                    return
            conns[i] = (ws, ws.closed, v)
            self.reconnected += 1
        await asyncio.gather(*(back(i) for i in range(k)))

    async def main(self):
        conns = await self.connect_all()
        await self.until(self.args.timeout,
                         lambda: all(v.snapshot_seq is not None or t.done() for _, t, v in conns))
        self.pipe.send(("ready", len(conns)))
        lags = array.array("d")
        watcher = asyncio.create_task(self.watch_lag(lags))
        msg = await self.next_message()
        if msg[0] == "reconnect":
            await self.reconnect(conns)
            msg = await self.next_message()
        _, final_seq = msg
        watcher.cancel()
        # Every viewer should end with every event after its snapshot, up to
        # the item's final seq.
        if final_seq is not None:
            await self.until(self.args.timeout, lambda: all(
                v.snapshot_seq is not None and v.snapshot_seq + v.unique >= final_seq
                for _, t, v in conns if not t.done()))
        await asyncio.gather(*(ws.close() for ws, _, _ in conns), return_exceptions=True)
        await asyncio.gather(*(t for _, t, _ in conns), return_exceptions=True)

        out = {"open": len(self.viewers), "failed": self.connect_failures, "errors": self.connect_errors,
               "without_snapshot": self.no_snapshot, "missed": 0, "incomplete": 0, "duplicates": 0,
               "out_of_order": 0, "closed": {}, "viewer_errors": [],
               "reconnected": self.reconnected, "reconnect_failures": self.reconnect_failures}
        for v in self.viewers:
            out["duplicates"] += v.duplicates
            out["out_of_order"] += v.out_of_order
            if final_seq is not None and v.snapshot_seq is not None:
                lost = max(0, final_seq - v.snapshot_seq - v.unique)
                out["missed"] += lost
                out["incomplete"] += lost > 0
            if v.close_code is not None and v.close_code not in (1000, 1001):
                out["closed"][str(v.close_code)] = out["closed"].get(str(v.close_code), 0) + 1
            if v.error and len(out["viewer_errors"]) < 5:
                out["viewer_errors"].append(v.error)
        out["loop_lag"] = lags.tobytes()
        self.pipe.send(("result", out, {k: v.tobytes() for k, v in self.receipts.items()}))


def group_main(args, count, pipe):
    try:
        asyncio.run(ViewerGroup(args, count, pipe).main())
    except BaseException as e:  # noqa: BLE001 - the parent reports it
        pipe.send(("error", repr(e)))
        raise


class Run:
    def __init__(self, args):
        self.args = args
        self.sent_at = {}  # amount text -> perf_counter send time
        self.bids = {"accepted": 0, "rejected": 0, "other": 0, "errors": 0}
        self.bid_errors = []

    def bid_loop(self, gw, start, groups):
        """Places the bids on a fixed schedule."""
        amount = start
        t0 = time.monotonic()
        for i in range(self.args.bids):
            if self.args.reconnect > 0 and i == self.args.bids // 2:
                for _, pipe in groups:
                    pipe.send(("reconnect",))
            due = t0 + i * self.args.interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            user = f"fanout_user_{i % self.args.users}"
            self.sent_at[amount_key(amount)] = time.perf_counter()
            try:
                status, data = gw.request("POST", f"/api/v1/items/{self.args.item}/bid",
                                          encode({"user_id": user, "amount": amount}))
            except Exception as e:  # noqa: BLE001 - counted
                self.bids["errors"] += 1
                if len(self.bid_errors) < 5:
                    self.bid_errors.append(repr(e))
                continue
            if status == 200:
                self.bids["accepted"] += 1
                nxt = data.get("min_next_bid")
                amount = Decimal(str(nxt)).quantize(CENT) if nxt is not None else amount + self.args.increment
            elif status == 409:
                self.bids["rejected"] += 1
                nxt = data.get("min_next_bid")
                if nxt is not None:
                    amount = max(amount, Decimal(str(nxt)).quantize(CENT))
            else:
                self.bids["other"] += 1
                if len(self.bid_errors) < 5:
                    self.bid_errors.append(f"HTTP {status}: {data}")

    def recv(self, pipe, want, timeout):
        if not pipe.poll(timeout):
            raise SystemExit(f"a viewer process sent no {want!r} within {timeout:.0f}s")
        msg = pipe.recv()
        if msg[0] == "error":
            raise SystemExit(f"a viewer process failed: {msg[1]}")
        return msg

    def main(self):
        args = self.args
        gw = Gateway(args.gateway, args.timeout)
        item = gw.ensure_item(args.item, args.increment)
        start = Decimal(str(item.get("starting_price") or args.increment)).quantize(CENT)
        if item.get("bid_count") or item.get("highest_bidder_id"):
            start = Decimal(str(item.get("current_bid"))).quantize(CENT) + args.increment

        # fork: the children inherit the parsed arguments; no event loop or
        # thread exists yet in this process.
        ctx = multiprocessing.get_context("fork")
        n = min(args.processes, args.connections)
        shares = [args.connections // n + (1 if i < args.connections % n else 0) for i in range(n)]
        groups = []
        t_connect = time.perf_counter()
        for share in shares:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=group_main, args=(args, share, child), daemon=True)
            proc.start()
            groups.append((proc, parent))
        connect_budget = args.timeout * (1 + args.connections / max(1, args.connect_concurrency * n)) + 10
        for _, pipe in groups:
            self.recv(pipe, "ready", connect_budget)
        connect_s = time.perf_counter() - t_connect

        t_bids = time.perf_counter()
        self.bid_loop(gw, start, groups)
        bids_s = time.perf_counter() - t_bids

        status, final = gw.request("GET", f"/api/v1/items/{args.item}")
        final_seq = int(final.get("seq") or 0) if status == 200 else None
        for _, pipe in groups:
            pipe.send(("finish", final_seq))
        results, latencies, foreign, lags = [], array.array("d"), 0, array.array("d")
        for proc, pipe in groups:
            _, out, receipts = self.recv(pipe, "result", args.timeout * 2 + 30)
            lags.frombytes(out.pop("loop_lag"))
            results.append(out)
            for key, raw in receipts.items():
                times = array.array("d")
                times.frombytes(raw)
                sent = self.sent_at.get(key)
                if sent is None:
                    foreign += len(times)
                    continue
                latencies.extend(t - sent for t in times)
            proc.join(5)
        return self.report(results, sorted(latencies), foreign, final_seq, connect_s, bids_s, sorted(lags))

    def report(self, results, lat, foreign, final_seq, connect_s, bids_s, lags):
        def total(key):
            return sum(r[key] for r in results)

        closed = {}
        for r in results:
            for code, k in r["closed"].items():
                closed[code] = closed.get(code, 0) + k

        def ms(seconds):
            return round(seconds * 1000, 3)

        return {
            "item": self.args.item,
            "processes": len(results),
            "connections": {"requested": self.args.connections, "open": total("open"),
                            "failed": total("failed"), "errors": sum((r["errors"] for r in results), [])[:5],
                            "without_snapshot": total("without_snapshot"), "connect_s": round(connect_s, 3),
                            "closed_by_server": closed,
                            "reconnected": total("reconnected"), "reconnect_failures": total("reconnect_failures"),
                            "viewer_errors": sum((r["viewer_errors"] for r in results), [])[:5]},
            "bids": dict(self.bids, sent=self.args.bids, interval_s=self.args.interval,
                         duration_s=round(bids_s, 3), errors_sample=self.bid_errors),
            "final_seq": final_seq,
            "deliveries": len(lat),
            "latency_ms": {"p50": ms(percentile(lat, 0.50)), "p90": ms(percentile(lat, 0.90)),
                           "p99": ms(percentile(lat, 0.99)), "max": ms(lat[-1] if lat else 0.0)},
            "client_loop_lag_ms": {"p50": ms(percentile(lags, 0.50)), "p99": ms(percentile(lags, 0.99)),
                                   "max": ms(lags[-1] if lags else 0.0)},
            "missed": total("missed"),
            "viewers_missing_events": total("incomplete"),
            "duplicates": total("duplicates"),
            "out_of_order": total("out_of_order"),
            "foreign_events": foreign,
        }


def print_text(r):
    c, b, l = r["connections"], r["bids"], r["latency_ms"]
    print(f"item:         {r['item']} (final seq {r['final_seq']})")
    print(f"viewers:      {c['open']}/{c['requested']} open in {r['processes']} processes, {c['failed']} failed, "
          f"{c['without_snapshot']} without snapshot, connected in {c['connect_s']}s")
    for e in c["errors"]:
        print(f"  connect error: {e}")
    if c["closed_by_server"]:
        print(f"  closed by server: {c['closed_by_server']}")
    if c["reconnected"] or c["reconnect_failures"]:
        print(f"  reconnected with since_seq: {c['reconnected']} ({c['reconnect_failures']} failed); "
              f"their replayed events are not in the latency numbers")
    for e in c["viewer_errors"]:
        print(f"  viewer error: {e}")
    print(f"bids:         {b['sent']} sent every {b['interval_s']}s in {b['duration_s']}s: "
          f"{b['accepted']} accepted, {b['rejected']} rejected, {b['other']} other, {b['errors']} errors")
    for e in b["errors_sample"]:
        print(f"  bid error: {e}")
    print(f"deliveries:   {r['deliveries']}")
    print(f"latency ms:   p50={l['p50']} p90={l['p90']} p99={l['p99']} max={l['max']}")
    g = r["client_loop_lag_ms"]
    print(f"client lag:   p50={g['p50']} p99={g['p99']} max={g['max']} ms (this script's event loops waking late; "
          f"when close to the latency, the client is the bottleneck)")
    print(f"missed:       {r['missed']} (viewers missing events: {r['viewers_missing_events']})")
    print(f"duplicates:   {r['duplicates']}")
    print(f"out of order: {r['out_of_order']}")


def main(argv=None):
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.connections + 256) if hard != resource.RLIM_INFINITY else args.connections + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    report = Run(args).main()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_text(report)
    c = report["connections"]
    clean = (c["failed"] == 0 and c["reconnect_failures"] == 0 and c["without_snapshot"] == 0 and report["missed"] == 0
             and report["duplicates"] == 0 and report["out_of_order"] == 0
             and report["final_seq"] is not None and report["bids"]["accepted"] > 0)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
