-- "Closed (or cancelled) auctions, most recently final first": the
-- gateway's GET /api/v1/items?status=closed|cancelled walks this index from
-- its cursor (keyset pagination on closed_at, item_id).
CREATE INDEX items_final_recent ON items (status, closed_at DESC, item_id DESC);
