-- A bidder's own activity (the gateway's /api/v1/users/{id}/bids and
-- /items): their bids newest first, the items they bid on by their latest
-- bid, the auctions they won by close time and the ones they sold by start
-- time. Each list is a keyset walk down one of these indexes from the
-- cursor, so a page costs the same however long the history is.
CREATE INDEX bids_user_time ON bids (user_id, bid_time DESC, event_id DESC);
CREATE INDEX items_winner_closed ON items (winner_id, closed_at DESC, item_id DESC) WHERE status = 'closed';
CREATE INDEX items_seller_starts ON items (seller_id, starts_at DESC, item_id DESC);
