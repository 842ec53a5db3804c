-- The gateway's selling list merges these rows with Redis's, ordered by id
-- byte-wise, so its query orders and compares item_id COLLATE "C". An index
-- in the database's collation (en_US.UTF-8 on RDS) serves neither that
-- order nor the keyset condition; this one does, whatever the locale. The
-- new index is built before the old one is dropped: the build only blocks
-- writes to items, and the drop's exclusive lock, which blocks reads too,
-- is then held for the moment left before the commit.
CREATE INDEX items_seller_starts_bytewise ON items (seller_id, starts_at DESC, item_id COLLATE "C" DESC);
DROP INDEX items_seller_starts;
