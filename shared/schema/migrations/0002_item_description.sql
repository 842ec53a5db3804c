-- The item's description, from its auction_closed event, so that a closed
-- item can be served from the archive once the live store has let it go.
-- NULL for items that have not closed yet, and for closes archived before
-- this version.
ALTER TABLE items
    ADD COLUMN name                text,
    ADD COLUMN starting_cents      bigint CHECK (starting_cents >= 0),
    ADD COLUMN min_increment_cents bigint CHECK (min_increment_cents >= 0),
    ADD COLUMN reserve_cents       bigint CHECK (reserve_cents >= 0),
    ADD COLUMN starts_at           timestamptz;
