-- Archived bids: one row per accepted bid event. The event id is the key, so
-- a redelivered or republished event is skipped by ON CONFLICT DO NOTHING.
CREATE TABLE bids (
    event_id       text        PRIMARY KEY,
    bid_id         text        NOT NULL,
    item_id        text        NOT NULL,
    user_id        text        NOT NULL,
    amount_cents   bigint      NOT NULL CHECK (amount_cents > 0),
    previous_cents bigint      NOT NULL CHECK (previous_cents >= 0),
    seq            bigint      NOT NULL CHECK (seq > 0),
    bid_time       timestamptz NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now()
);

-- "Bids of an item, newest first": the history API's keyset pagination walks
-- this index backwards from the cursor.
CREATE INDEX bids_item_seq ON bids (item_id, seq DESC, event_id DESC);

-- Latest known state of each item, upserted from events. seq only grows: an
-- event older than the stored state is ignored, so out-of-order or repeated
-- delivery never moves an item backwards.
CREATE TABLE items (
    item_id           text        PRIMARY KEY,
    seq               bigint      NOT NULL,
    status            text        NOT NULL DEFAULT 'active' CHECK (status IN ('scheduled', 'active', 'closed')),
    current_cents     bigint      NOT NULL DEFAULT 0,
    highest_bidder_id text        NOT NULL DEFAULT '',
    bid_count         bigint      NOT NULL DEFAULT 0,
    ends_at           timestamptz,
    last_bid_at       timestamptz,
    winner_id         text,
    closed_at         timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Messages the worker could not decode, kept with the reason so an operator
-- can inspect them; the stream moves on without them. The digest makes a
-- redelivered dead letter idempotent like a bid.
CREATE TABLE dead_letters (
    id             bigserial   PRIMARY KEY,
    stream_seq     bigint      NOT NULL,
    subject        text        NOT NULL,
    reason         text        NOT NULL,
    payload        bytea       NOT NULL,
    payload_sha256 bytea       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_seq, payload_sha256)
);
