#!/usr/bin/python3
"""Experiment 3, resilience: does bidding survive its dependencies failing?

Runs a steady bid workload against the gateway while it breaks and restores
components one after another, and reports per phase how many bids got a
correct answer (200 accepted or 409 rejected), how many got 503 and how many
failed outright, with latency. The design promises: bidding continues while
NATS, PostgreSQL, the broadcast service or the archival worker is down, and
stops with a fast 503 only while Redis is gone. Every bid carries its own
Idempotency-Key; after the last phase each bid that got no answer or a 5xx is
sent again with its key, which tells whether it had been applied. Then the
gateway's bid count for each workload item must equal the acceptances the
workload knows of (no lost or phantom acceptance), no 5xx may have hidden an
applied bid, and, with --check-history, the archived history must hold every
accepted bid exactly once.

Components are broken in one of three ways, per component name:

  --pause NAME=PORT     SIGSTOP the process listening on PORT and its children,
                        SIGCONT them after the phase. Needs no restart command, so it works with
                        `make dev` (which stops everything if a process exits).
  --kill-port NAME=PORT SIGKILL the process listening on PORT; restore with
                        --start NAME=COMMAND.
  --kill NAME=COMMAND   run COMMAND to break it (e.g. "docker stop bidding-nats");
                        restore with --start NAME=COMMAND.
  --health NAME=URL     after restoring, wait (up to --recovery-timeout) until
                        URL answers 200 before the recovery phase starts.

Components are broken in the order given. Examples:

  # make dev stack: freeze NATS, then PostgreSQL, then Redis
  /usr/bin/python3 run_experiment3.py --pause nats=4222 --pause postgres=5432 --pause redis=6379

  # Docker Compose stack
  /usr/bin/python3 run_experiment3.py \\
      --kill nats="docker stop bidding-nats" --start nats="docker start bidding-nats"

Loopback gateway only unless --allow-remote; every phase and wait is bounded.
"""

import argparse
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from urllib.parse import urlparse

CENT = Decimal("0.01")
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def parse_pairs(values, what, convert=str):
    out = {}
    for v in values or []:
        name, sep, rest = v.partition("=")
        if not sep or not name or not rest:
            raise SystemExit(f"{what} {v!r}: want NAME=VALUE")
        try:
            out[name] = convert(rest)
        except ValueError:
            raise SystemExit(f"{what} {v!r}: bad value")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--gateway", default="http://127.0.0.1:8080", help="API gateway base URL")
    p.add_argument("--items", type=int, default=4, help="workload items (fresh ids, default 4)")
    p.add_argument("--workers", type=int, default=8, help="bidding threads (default 8)")
    p.add_argument("--users", type=int, default=50, help="bidder ids to rotate through (default 50)")
    p.add_argument("--rate", type=float, default=200, help="target bids per second overall (default 200; 0: as fast as possible)")
    p.add_argument("--phase-seconds", type=float, default=10, help="length of each phase (default 10)")
    p.add_argument("--request-timeout", type=float, default=3, help="per-request timeout in seconds (default 3)")
    p.add_argument("--recovery-timeout", type=float, default=60, help="longest wait for health and history (default 60)")
    p.add_argument("--pause", action="append", metavar="NAME=PORT", help="SIGSTOP/SIGCONT the process on PORT")
    p.add_argument("--kill-port", action="append", metavar="NAME=PORT", help="SIGKILL the process on PORT")
    p.add_argument("--kill", action="append", metavar="NAME=COMMAND", help="command that breaks NAME")
    p.add_argument("--start", action="append", metavar="NAME=COMMAND", help="command that restores NAME")
    p.add_argument("--health", action="append", metavar="NAME=URL", help="URL that answers 200 once NAME is back")
    p.add_argument("--check-history", action="store_true", help="check the archived history holds every accepted bid once")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-remote", action="store_true", help="allow a gateway other than loopback")
    args = p.parse_args(argv)

    errs = []
    host = urlparse(args.gateway).hostname
    if host is None:
        errs.append(f"--gateway {args.gateway!r} is not a URL")
    elif host not in LOOPBACK and not args.allow_remote:
        errs.append(f"--gateway {args.gateway!r}: loopback only (pass --allow-remote to override)")
    if not 1 <= args.items <= 1000 or not 1 <= args.workers <= 256 or not 1 <= args.users <= 100000:
        errs.append("--items must be 1..1000, --workers 1..256, --users 1..100000")
    if not 0 < args.phase_seconds <= 600 or not 0 < args.request_timeout <= 60 or not 0 < args.recovery_timeout <= 600:
        errs.append("--phase-seconds must be in (0, 600], --request-timeout (0, 60], --recovery-timeout (0, 600]")
    if args.rate < 0 or args.rate > 100000:
        errs.append("--rate must be 0..100000")

    pauses = parse_pairs(args.pause, "--pause", int)
    kill_ports = parse_pairs(args.kill_port, "--kill-port", int)
    kills = parse_pairs(args.kill, "--kill")
    starts = parse_pairs(args.start, "--start")
    args.healths = parse_pairs(args.health, "--health")
    faults = []
    for name, port in pauses.items():
        faults.append({"name": name, "how": "pause", "port": port})
    for name, port in kill_ports.items():
        if name not in starts:
            errs.append(f"--kill-port {name}: needs --start {name}=COMMAND to bring it back")
        faults.append({"name": name, "how": "kill-port", "port": port, "start": starts.get(name)})
    for name, cmd in kills.items():
        if name not in starts:
            errs.append(f"--kill {name}: needs --start {name}=COMMAND to bring it back")
        faults.append({"name": name, "how": "command", "kill": cmd, "start": starts.get(name)})
    names = [f["name"] for f in faults]
    if len(set(names)) != len(names):
        errs.append("each component may be broken one way only")
    for name in list(starts) + list(args.healths):
        if name not in names:
            errs.append(f"--start/--health {name}: no --pause, --kill-port or --kill names it")
    if errs:
        p.error("; ".join(errs))
    # Keep the command-line order of the faults.
    order = {}
    for i, a in enumerate(argv if argv is not None else sys.argv[1:]):
        name = a.split("=", 1)[0] if "=" in a else None
        if name in names and name not in order:
            order[name] = i
    faults.sort(key=lambda f: order.get(f["name"], 0))
    args.faults = faults
    return args


def pid_on_port(port):
    """The pid of the process listening on a local TCP port, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, state, inode = cols[1], cols[3], cols[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        except OSError:
            continue
    if not inodes:
        raise RuntimeError(f"nothing listens on port {port}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError(f"no visible process owns the listener on port {port} (run as its user or root)")


def with_descendants(pid):
    """pid and every process below it: PostgreSQL serves each connection
    from a child of the listener, so freezing only the listener would leave
    existing connections working."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name is in parentheses and may hold spaces.
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def encode(fields):
    """JSON object with Decimal values as exact two-decimal numbers (never floats)."""
    return "{" + ",".join(
        f"{json.dumps(k)}:{f'{v:.2f}' if isinstance(v, Decimal) else json.dumps(v)}" for k, v in fields.items()) + "}"


class Client:
    """Keep-alive HTTP client owned by one thread."""

    def __init__(self, base, timeout):
        u = urlparse(base)
        self.host, self.port, self.prefix, self.timeout = u.hostname, u.port or 80, u.path.rstrip("/"), timeout
        self.conn = None

    def request(self, method, path, body=None, key=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if key:
                headers["Idempotency-Key"] = key
            self.conn.request(method, self.prefix + path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        try:
            parsed = json.loads(data, parse_float=Decimal) if data else {}
        except ValueError:
            parsed = {}
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, parsed


class Stats:
    """Answers per phase, shared by the workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phase = "baseline"
        self.phases = {}
        self.accepted = {}  # item -> [event ids]
        self.unknowns = []  # (item, body, key, first answer) of bids with unknown outcome

    def set_phase(self, name):
        with self.lock:
            self.phase = name
            self.phases.setdefault(name, {"started": time.time(), "n": 0, "ok": 0, "accepted": 0,
                                          "status": {}, "errors": 0, "err_sample": [], "lat": []})

    def unknown(self, item, body, key, answer):
        with self.lock:
            self.unknowns.append((item, body, key, answer))

    def record(self, status, latency, err=None, item=None, event_id=None):
        with self.lock:
            ph = self.phases[self.phase]
            ph["n"] += 1
            ph["lat"].append(latency)
            if err is not None:
                ph["errors"] += 1
                if len(ph["err_sample"]) < 3:
                    ph["err_sample"].append(err)
                return
            ph["status"][str(status)] = ph["status"].get(str(status), 0) + 1
            if status in (200, 409):
                ph["ok"] += 1
            if status == 200:
                ph["accepted"] += 1
                self.accepted.setdefault(item, []).append(event_id)


def percentile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values), max(1, math.ceil(q * len(values)))) - 1]


class Experiment:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.stop = threading.Event()
        run_id = uuid.uuid4().hex[:8]
        self.items = [f"exp3_{run_id}_{i}" for i in range(args.items)]
        self.next = {}
        self.next_lock = threading.Lock()
        self.increment = Decimal("1.00")
        self.log = []

    def say(self, msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        self.log.append(line)
        print(line, file=sys.stderr, flush=True)

    def setup(self):
        c = Client(self.args.gateway, self.args.request_timeout)
        for item in self.items:
            status, data = c.request("POST", "/api/v1/items", encode(
                {"id": item, "name": f"Resilience {item}", "starting_price": self.increment,
                 "min_increment": self.increment}))
            if status not in (200, 201):
                raise SystemExit(f"create item {item}: HTTP {status} {data}")
            self.next[item] = self.increment

    def worker(self, idx):
        c = Client(self.args.gateway, self.args.request_timeout)
        # Each worker paces itself to its share of --rate.
        period = self.args.workers / self.args.rate if self.args.rate > 0 else 0
        due = time.monotonic()
        n = 0
        while not self.stop.is_set():
            if period:
                due += period
                delay = due - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                if delay < -1:
                    due = time.monotonic()  # do not burst to catch up after an outage
            item = self.items[(idx + n) % len(self.items)]
            user = f"exp3_user_{(idx + n * self.args.workers) % self.args.users}"
            n += 1
            with self.next_lock:
                amount = self.next[item]
            body = encode({"user_id": user, "amount": amount})
            # Every bid carries its own key, so a bid whose outcome is unknown
            # (no answer, or a 5xx) can be asked about again after recovery.
            key = f"exp3-{uuid.uuid4().hex}"
            t = time.perf_counter()
            try:
                status, data = c.request("POST", f"/api/v1/items/{item}/bid", body, key)
            except Exception as e:  # noqa: BLE001 - an outage is what we measure
                self.stats.record(None, time.perf_counter() - t, err=type(e).__name__ + ": " + str(e)[:120])
                self.stats.unknown(item, body, key, "no answer")
                if self.stop.wait(0.05):  # no hot loop against a dead port
                    return
                continue
            lat = time.perf_counter() - t
            self.stats.record(status, lat, item=item, event_id=data.get("event_id"))
            if status >= 500:
                self.stats.unknown(item, body, key, str(status))
            nxt = data.get("min_next_bid") if status in (200, 409) else None
            if nxt is not None:
                with self.next_lock:
                    self.next[item] = max(self.next[item], Decimal(str(nxt)).quantize(CENT))

    def wait_health(self, name):
        url = self.args.healths.get(name)
        if not url:
            return True
        u = urlparse(url)
        deadline = time.monotonic() + self.args.recovery_timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=2)
                conn.request("GET", u.path or "/")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        self.say(f"{name}: {url} not healthy after {self.args.recovery_timeout}s")
        return False

    def run_command(self, cmd):
        res = subprocess.run(cmd, shell=True, timeout=self.args.recovery_timeout,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if res.returncode != 0:
            self.say(f"command {cmd!r} exited {res.returncode}: {res.stdout.strip()[:300]}")

    def break_it(self, f):
        if f["how"] == "pause":
            f["pids"] = with_descendants(pid_on_port(f["port"]))
            signal_all(f["pids"], signal.SIGSTOP)
            self.say(f"{f['name']}: paused pids {f['pids']} (port {f['port']})")
        elif f["how"] == "kill-port":
            pid = pid_on_port(f["port"])
            os.kill(pid, signal.SIGKILL)
            self.say(f"{f['name']}: killed pid {pid} (port {f['port']})")
        else:
            self.run_command(f["kill"])
            self.say(f"{f['name']}: ran {f['kill']!r}")

    def restore(self, f):
        if f["how"] == "pause":
            signal_all(f["pids"], signal.SIGCONT)
            self.say(f"{f['name']}: resumed pids {f['pids']}")
        else:
            self.run_command(f["start"])
            self.say(f"{f['name']}: ran {f['start']!r}")
        self.wait_health(f["name"])

    def run(self):
        self.setup()
        self.stats.set_phase("baseline")
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.args.workers)]
        for t in threads:
            t.start()
        restore_pending = None
        try:
            time.sleep(self.args.phase_seconds)
            for f in self.args.faults:
                self.break_it(f)
                restore_pending = f
                self.stats.set_phase(f"{f['name']} down")
                time.sleep(self.args.phase_seconds)
                self.stats.set_phase(f"{f['name']} restoring")
                self.restore(f)
                restore_pending = None
                self.stats.set_phase(f"{f['name']} recovered")
                time.sleep(self.args.phase_seconds)
        finally:
            # Never leave a component frozen, whatever went wrong.
            if restore_pending is not None and restore_pending["how"] == "pause" and "pids" in restore_pending:
                signal_all(restore_pending["pids"], signal.SIGCONT)
            self.stop.set()
            for t in threads:
                t.join(self.args.request_timeout + 5)
        return self.report()

    def resolve_unknowns(self):
        """Asks again, with the same Idempotency-Key, about every bid whose
        first answer was missing or a 5xx. The gateway replays the first
        outcome of a bid it applied; one it never saw is decided now, and,
        as the workload's prices have climbed past it, loses."""
        c = Client(self.args.gateway, self.args.request_timeout)
        out = {"asked": 0, "applied": 0, "not_applied": 0, "unresolved": 0, "applied_after": {}}
        for item, body, key, answer in self.stats.unknowns:
            out["asked"] += 1
            try:
                status, data = c.request("POST", f"/api/v1/items/{item}/bid", body, key)
            except Exception:  # noqa: BLE001 - counted
                out["unresolved"] += 1
                continue
            if status == 200:
                out["applied"] += 1
                out["applied_after"][answer] = out["applied_after"].get(answer, 0) + 1
                with self.stats.lock:
                    self.stats.accepted.setdefault(item, []).append(data.get("event_id"))
            elif status == 409:
                out["not_applied"] += 1
            else:
                out["unresolved"] += 1
        return out

    def check_counts(self):
        c = Client(self.args.gateway, self.args.request_timeout)
        out = {}
        for item in self.items:
            seen = len(self.stats.accepted.get(item, []))
            try:
                status, data = c.request("GET", f"/api/v1/items/{item}")
            except Exception as e:  # noqa: BLE001 - reported
                out[item] = {"accepted_seen": seen, "error": repr(e)}
                continue
            out[item] = {"accepted_seen": seen, "gateway_bid_count": data.get("bid_count") if status == 200 else None}
        return out

    def check_history(self):
        """Waits until every accepted event id is archived, and none twice."""
        c = Client(self.args.gateway, self.args.request_timeout)
        deadline = time.monotonic() + self.args.recovery_timeout
        result = {}
        while True:
            result = {}
            for item in self.items:
                want = {e for e in self.stats.accepted.get(item, []) if e}
                got, dups, cursor, pages, status = set(), 0, "", 0, None
                while pages < 1000:
                    q = f"/api/v1/items/{item}/bids?limit=500" + (f"&cursor={cursor}" if cursor else "")
                    try:
                        status, page = c.request("GET", q)
                    except Exception:  # noqa: BLE001 - retried until the deadline
                        status, page = None, {}
                    if status != 200:
                        break
                    pages += 1
                    for b in page.get("bids", []):
                        if b.get("event_id") in got:
                            dups += 1
                        got.add(b.get("event_id"))
                    cursor = page.get("next_cursor")
                    if not cursor:
                        break
                result[item] = {"accepted": len(want), "archived": len(got), "missing": len(want - got),
                                "duplicates": dups, "http_status": status}
            if all(r["missing"] == 0 and r["http_status"] == 200 for r in result.values()):
                return result
            if time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def report(self):
        phases = []
        for name, ph in self.stats.phases.items():
            lat = ph["lat"]
            n = ph["n"]
            phases.append({
                "phase": name,
                "bids": n,
                "answered_ok": ph["ok"],
                "availability": round(ph["ok"] / n, 4) if n else None,
                "accepted": ph["accepted"],
                "status": ph["status"],
                "errors": ph["errors"],
                "error_sample": ph["err_sample"],
                "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
                "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
                "max_ms": round(max(lat) * 1000, 2) if lat else 0.0,
            })
        resolved = self.resolve_unknowns()
        counts = self.check_counts()
        # After resolving unknown outcomes the gateway's count must equal the
        # acceptances the workload knows of. Fewer is a lost acceptance; more
        # can only be a bid still unresolved.
        lost = extra = 0
        for c in counts.values():
            n = c.get("gateway_bid_count")
            if n is None:
                lost += c["accepted_seen"]
                continue
            lost += max(0, c["accepted_seen"] - n)
            extra += max(0, n - c["accepted_seen"])
        verdict = {"lost_acceptances": lost, "unexplained_acceptances": max(0, extra - resolved["unresolved"]),
                   "unknown_outcomes": resolved["asked"], "applied_after_5xx": sum(
                       v for k, v in resolved["applied_after"].items() if k != "no answer"),
                   "applied_without_answer": resolved["applied_after"].get("no answer", 0),
                   "unresolved": resolved["unresolved"]}
        rep = {"gateway": self.args.gateway, "items": self.items, "phases": phases,
               "counts": counts, "verdict": verdict, "log": self.log}
        if self.args.check_history:
            rep["history"] = self.check_history()
        return rep


def print_text(rep):
    print("| phase | bids | availability (200/409) | accepted | 503 | other statuses | errors | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for p in rep["phases"]:
        other = {k: v for k, v in p["status"].items() if k not in ("200", "409", "503")}
        avail = f"{p['availability'] * 100:.2f}%" if p["availability"] is not None else "-"
        print(f"| {p['phase']} | {p['bids']} | {avail} | {p['accepted']} | {p['status'].get('503', 0)} | "
              f"{other or '-'} | {p['errors']} | {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} |")
    for p in rep["phases"]:
        for e in p["error_sample"]:
            print(f"  {p['phase']}: {e}")
    v = rep["verdict"]
    print(f"outcomes: {v['unknown_outcomes']} bids had no answer or a 5xx; asked again with their "
          f"Idempotency-Key, {v['applied_after_5xx']} answered 5xx and {v['applied_without_answer']} "
          f"unanswered had been applied, {v['unresolved']} stayed unknown")
    print(f"bid counts: {v['lost_acceptances']} lost acceptances, "
          f"{v['unexplained_acceptances']} unexplained acceptances")
    if "history" in rep:
        missing = sum(h["missing"] for h in rep["history"].values())
        dups = sum(h["duplicates"] for h in rep["history"].values())
        print(f"archived history: {missing} accepted bids missing, {dups} duplicates")


def main(argv=None):
    args = parse_args(argv)
    rep = Experiment(args).run()
    if args.json:
        print(json.dumps(rep, indent=2, default=str))
    else:
        print_text(rep)
    v = rep["verdict"]
    # A 5xx says the bid was not placed; one that was applied anyway is a
    # wrong answer.
    counts_ok = v["lost_acceptances"] == 0 and v["unexplained_acceptances"] == 0 and v["applied_after_5xx"] == 0
    history_ok = all(h["missing"] == 0 and h["duplicates"] == 0 for h in rep.get("history", {}).values())
    return 0 if counts_ok and history_ok else 1


if __name__ == "__main__":
    sys.exit(main())
