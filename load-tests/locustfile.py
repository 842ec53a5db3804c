"""Locust scenarios for the bidding platform's HTTP API.

Two user classes, picked on the command line:

  ContendedItemBidder  many users bidding on one hot item: each bids the lowest
                       amount that can win according to the last answer it
                       saw, so the price climbs and most bids race each other.
  MixedWorkloadUser    a marketplace: reads items (most requests), bids on
                       several items and pages through bid history.

Run with Debian's Locust (python3-locust 2.12) on /usr/bin/python3:

  /usr/bin/python3 -m locust -f locustfile.py --headless -H http://localhost:8080 \
      -u 200 -r 50 -t 60s ContendedItemBidder
  /usr/bin/python3 -m locust -f locustfile.py --headless -H http://localhost:8080 \
      -u 300 -r 50 -t 60s MixedWorkloadUser --item-count 20

A 409 is a correct answer to a losing bid, so it counts as a success; the
accepted and rejected totals are printed when the run ends. Amounts are
decimals with two places, never floats, as the API requires. Targets loopback
only unless --allow-remote is given.
"""

import json
import random
import threading
import uuid
from decimal import Decimal
from urllib.parse import urlparse

from locust import HttpUser, between, events, task
from locust.exception import StopUser

CENT = Decimal("0.01")
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument("--hot-item", default="locust_hot_item",
                        help="item id ContendedItemBidder users bid on")
    parser.add_argument("--item-count", type=int, default=10,
                        help="items MixedWorkloadUser users spread over")
    parser.add_argument("--item-prefix", default="locust_item",
                        help="MixedWorkloadUser item ids are <prefix>_<n>")
    parser.add_argument("--bid-increment", default="1.00",
                        help="step above the current price when an answer has no min_next_bid")
    parser.add_argument("--allow-remote", action="store_true", default=False,
                        help="allow a host other than loopback")


@events.test_start.add_listener
def _check_host(environment, **_kwargs):
    host = urlparse(environment.host or "").hostname
    if host not in LOOPBACK and not environment.parsed_options.allow_remote:
        raise SystemExit(f"refusing to load {environment.host!r}: loopback only (pass --allow-remote to override)")


class Outcomes:
    """Counts bid answers across all users; printed at the end of the run."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = {}

    def add(self, key):
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1


OUTCOMES = Outcomes()


@events.test_stop.add_listener
def _report(**_kwargs):
    if OUTCOMES.counts:
        parts = ", ".join(f"{k}={v}" for k, v in sorted(OUTCOMES.counts.items()))
        print(f"bid answers: {parts}")


def money(text_or_number):
    """Exact two-decimal amount from JSON text parsed with parse_float=Decimal."""
    return Decimal(str(text_or_number)).quantize(CENT)


def encode(fields):
    """JSON object text with Decimal values written as exact two-decimal numbers.

    json.dumps would need float() for a number, and the API's amounts must
    never pass through floating point.
    """
    parts = []
    for key, value in fields.items():
        text = f"{value:.2f}" if isinstance(value, Decimal) else json.dumps(value)
        parts.append(f"{json.dumps(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def parse(resp):
    try:
        return json.loads(resp.text, parse_float=Decimal)
    except ValueError:
        return {}


class Bidder:
    """Per-user memory of each item's lowest winning amount."""

    def __init__(self, user, increment):
        self.user = user
        self.increment = increment
        self.next = {}

    def load(self, item_id):
        """Reads (auto-creating) the item and remembers where bidding starts."""
        client = self.user.client
        with client.get(f"/api/v1/items/{item_id}", name="/api/v1/items/[id]", catch_response=True) as resp:
            if resp.status_code == 404:
                resp.success()
                body = encode({"id": item_id, "name": f"Load test {item_id}",
                               "starting_price": self.increment, "min_increment": self.increment})
                with client.post("/api/v1/items", data=body, name="/api/v1/items",
                                 headers={"Content-Type": "application/json"}, catch_response=True) as created:
                    if created.status_code not in (200, 201, 409):
                        created.failure(f"create item: {created.status_code} {created.text[:200]}")
                        return None
                    created.success()
                    data = parse(created)
            elif resp.status_code != 200:
                resp.failure(f"get item: {resp.status_code} {resp.text[:200]}")
                return None
            else:
                data = parse(resp)
        start = money(data.get("starting_price") or self.increment)
        if data.get("bid_count") or data.get("highest_bidder_id"):
            start = money(data.get("current_bid", 0)) + money(data.get("min_increment") or self.increment)
        self.next[item_id] = max(start, self.next.get(item_id, CENT))
        return self.next[item_id]

    def bid(self, item_id, user_id, name, amount=None):
        if item_id not in self.next and self.load(item_id) is None:
            return
        if amount is None:
            amount = self.next[item_id]
        payload = encode({"user_id": user_id, "amount": amount})
        with self.user.client.post(f"/api/v1/items/{item_id}/bid", data=payload, name=name,
                                   headers={"Content-Type": "application/json"},
                                   catch_response=True) as resp:
            data = parse(resp)
            if resp.status_code == 200:
                OUTCOMES.add("accepted")
                resp.success()
                nxt = data.get("min_next_bid")
                self._raise(item_id, money(nxt) if nxt is not None else amount + self.increment)
            elif resp.status_code == 409:
                # A losing bid got its correct answer.
                OUTCOMES.add("rejected")
                resp.success()
                if data.get("min_next_bid") is not None:
                    self._raise(item_id, money(data["min_next_bid"]))
                elif data.get("current_bid") is not None:
                    self._raise(item_id, money(data["current_bid"]) + self.increment)
            else:
                OUTCOMES.add(str(resp.status_code))
                resp.failure(f"bid: {resp.status_code} {resp.text[:200]}")

    def _raise(self, item_id, amount):
        if amount > self.next.get(item_id, CENT):
            self.next[item_id] = amount


class ContendedItemBidder(HttpUser):
    """Many users, one item: the write-contention scenario."""

    # About 10 bids/s per user keeps each user under the gateway's default
    # per-user rate limit (20/s); add users to add load.
    wait_time = between(0.05, 0.15)

    def on_start(self):
        opts = self.environment.parsed_options
        self.user_id = f"locust_{uuid.uuid4().hex[:12]}"
        self.item_id = opts.hot_item
        self.bidder = Bidder(self, money(opts.bid_increment))
        if self.bidder.load(self.item_id) is None:
            raise StopUser()

    @task
    def bid(self):
        self.bidder.bid(self.item_id, self.user_id, "/api/v1/items/[hot]/bid")


class MixedWorkloadUser(HttpUser):
    """Reads and bids spread over several items, like a marketplace."""

    wait_time = between(0.1, 0.5)

    def on_start(self):
        opts = self.environment.parsed_options
        self.user_id = f"locust_{uuid.uuid4().hex[:12]}"
        self.items = [f"{opts.item_prefix}_{i}" for i in range(max(1, opts.item_count))]
        self.bidder = Bidder(self, money(opts.bid_increment))
        # Creates the items that do not exist yet, so reads never meet a 404
        # on a gateway without AUTO_CREATE_ITEMS.
        for item in self.items:
            if self.bidder.load(item) is None:
                raise StopUser()

    @task(6)
    def view_item(self):
        item = random.choice(self.items)
        with self.client.get(f"/api/v1/items/{item}", name="/api/v1/items/[id]", catch_response=True) as resp:
            if resp.status_code == 200:
                resp.success()
                data = parse(resp)
                if data.get("bid_count") or data.get("highest_bidder_id"):
                    inc = money(data.get("min_increment") or self.bidder.increment)
                    self.bidder._raise(item, money(data.get("current_bid", 0)) + inc)
            else:
                resp.failure(f"get item: {resp.status_code} {resp.text[:200]}")

    @task(3)
    def place_bid(self):
        item = random.choice(self.items)
        amount = None
        if item in self.bidder.next and random.random() < 0.3:
            # Some bidders are behind the price: a bid that must lose.
            amount = max(CENT, self.bidder.next[item] - self.bidder.increment * random.randint(1, 5))
        self.bidder.bid(item, self.user_id, "/api/v1/items/[id]/bid", amount)

    @task(1)
    def bid_history(self):
        item = random.choice(self.items)
        with self.client.get(f"/api/v1/items/{item}/bids?limit=20", name="/api/v1/items/[id]/bids",
                             catch_response=True) as resp:
            if resp.status_code == 200:
                resp.success()
            else:
                resp.failure(f"history: {resp.status_code} {resp.text[:200]}")
