-- An item's seq names one event: the gateway gives each accepted event of an
-- item the next seq, once. Two different events with the same item and seq
-- mean that an auction was rewound (a lost Redis write reissued a seq) or
-- that an event was forged, and the archive must not silently keep both, or
-- pick one without saying so. With this constraint the worker stores the
-- first and dead-letters the other with the reason. Redelivered and
-- republished copies of one event still share its event id and are skipped
-- by ON CONFLICT (event_id) as before.
--
-- An archive written before this version may already hold such pairs. Each
-- pair keeps the row archived first; the others move to dead_letters, so that
-- adding the constraint cannot fail on old data and nothing is lost. Their
-- payload is the row in the event contract's JSON, since the original message
-- is no longer at hand (stream_seq 0 says so).
WITH ranked AS (
    SELECT event_id,
           first_value(event_id) OVER (PARTITION BY item_id, seq ORDER BY archived_at, event_id) AS kept
    FROM bids
), moved AS (
    DELETE FROM bids b
    USING ranked r
    WHERE b.event_id = r.event_id AND r.event_id <> r.kept
    RETURNING b.*, r.kept
), letters AS (
    SELECT item_id,
           format('item %s seq %s is already archived as event %s; event %s has the same seq and was moved out of bids by migration 0003',
                  item_id, seq, kept, event_id) AS reason,
           convert_to(json_build_object(
               'type', 'bid', 'event_id', event_id, 'item_id', item_id, 'bid_id', bid_id, 'user_id', user_id,
               'amount', (amount_cents / 100.0)::numeric(20, 2), 'previous_bid', (previous_cents / 100.0)::numeric(20, 2),
               'seq', seq, 'timestamp', bid_time)::text, 'UTF8') AS payload
    FROM moved
)
INSERT INTO dead_letters (stream_seq, subject, reason, payload, payload_sha256)
SELECT 0, 'bids.' || item_id, reason, payload, sha256(payload)
FROM letters
ON CONFLICT (stream_seq, payload_sha256) DO NOTHING;

-- Built inside the migration's transaction, under a lock that holds back
-- reads and writes of bids until it commits: the worker (the only writer)
-- and the gateway's history reads wait for the index build, once.
ALTER TABLE bids ADD CONSTRAINT bids_item_seq_key UNIQUE (item_id, seq);
