-- Who created each item (the creator's token subject), from its
-- auction_closed or auction_cancelled event; NULL for items created without
-- authentication and for closes archived before this version.
ALTER TABLE items ADD COLUMN seller_id text;

-- An auction may end cancelled (auction_cancelled) instead of closed: final
-- all the same, without a winner. closed_at then holds when it was
-- cancelled.
ALTER TABLE items DROP CONSTRAINT items_status_check;
ALTER TABLE items ADD CONSTRAINT items_status_check
    CHECK (status IN ('scheduled', 'active', 'closed', 'cancelled'));

-- A cancelled item's history leaves the stream like a closed one's, down to
-- its final event.
DROP INDEX items_purge_due;
CREATE INDEX items_purge_due ON items (closed_at)
    WHERE status IN ('closed', 'cancelled') AND stream_purged_at IS NULL;
