-- When the worker purged a closed item's history from the JetStream stream,
-- down to its auction_closed event; NULL while it has not. The stream keeps
-- history until the archive holds it (no age limit), so a closed item's
-- subject is purged once the close and everything before it are archived and
-- ARCHIVE_PURGE_AFTER has passed since the close.
ALTER TABLE items ADD COLUMN stream_purged_at timestamptz;

-- The purge pass looks for closed items not purged yet, oldest close first;
-- once purged, a row leaves this index.
CREATE INDEX items_purge_due ON items (closed_at) WHERE status = 'closed' AND stream_purged_at IS NULL;
