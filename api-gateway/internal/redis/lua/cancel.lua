-- Cancels one auction, as models.Cancel decides: an admin may cancel any
-- auction that has not ended, its seller only before the first bid, anyone
-- else never. The check and the cancellation are one step, so no bid can
-- slip in between a seller's check and the cancellation.
-- KEYS[1] item hash, KEYS[2] outbox stream; ARGV[1] item id, ARGV[2] event
-- id, ARGV[3] who cancels ('' without authentication), ARGV[4] '1' if they
-- may cancel any auction (an admin), ARGV[5] how long the cancelled item
-- stays (ms; 0: for ever), ARGV[6] deadline (ms, 0: none).
-- Returns {-1} past the deadline, {0} unknown item, {4} not checked against
-- the event log on this instance, {5} not the seller, {6, status} already
-- closed or cancelled, {7} has bids, {3, outbox id, event json} cancelled.
local item, outbox = KEYS[1], KEYS[2]
local now, ts = clock()
local deadline = tonumber(ARGV[6])
if deadline > 0 and now > deadline then return {-1} end
if redis.call('EXISTS', item) == 0 then return {0} end
local f = redis.call('HMGET', item, 'res', 'ea', 'st', 'cur', 'cnt', 'seq', 'name', 'sp', 'inc', 'sa', 'ep', 'sel')
if f[11] ~= instance() then return {4} end
local res, ea, st, cur = tonumber(f[1]), tonumber(f[2]), f[3], tonumber(f[4])
local cnt, seq, name, sp = tonumber(f[5]), tonumber(f[6]), f[7], tonumber(f[8])
local inc, sa, seller = tonumber(f[9]), tonumber(f[10]), f[12] or ''
local by, admin = ARGV[3], ARGV[4] == '1'
if not admin and (seller == '' or by ~= seller) then return {5} end
local s = status(st, sa, ea, now)
if s == 'closed' or s == 'cancelled' then return {6, s} end
if not admin and cnt > 0 then return {7} end
seq = seq + 1
redis.call('HSET', item, 'st', 'cancelled', 'seq', int(seq))
-- Like a closed item: the archive answers for it once it is gone.
local keep = tonumber(ARGV[5])
if keep > 0 then redis.call('PEXPIRE', item, keep) end
local ends, who, sel = '', '', ''
if ea > 0 then ends = ',"ends_at":"' .. rfc3339ms(ea) .. '"' end
if by ~= '' then who = ',"user_id":' .. str(by) end
if seller ~= '' then sel = ',"seller_id":' .. str(seller) end
local ev = '{"type":"auction_cancelled","event_id":' .. str(ARGV[2]) .. ',"item_id":' .. str(ARGV[1]) .. who ..
  ',"amount":' .. money(cur) .. ',"previous_bid":0.00,"timestamp":"' .. ts ..
  '","seq":' .. int(seq) .. ends .. ',"bid_count":' .. int(cnt) ..
  -- The item's description, as auction_closed carries it, for the archive.
  ',"name":' .. str(name) .. ',"starting_price":' .. money(sp) .. ',"min_increment":' .. money(inc) ..
  ',"reserve_price":' .. money(res) .. ',"starts_at":"' .. rfc3339ms(sa) .. '"' .. sel .. '}'
local oid = redis.call('XADD', outbox, '*', 'e', ev)
return {3, oid, ev}
