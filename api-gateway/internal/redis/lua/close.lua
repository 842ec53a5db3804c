-- Closes one auction if its end (by this server's clock) has passed, as
-- models.Close does; the winner is models.Item.CloseOutcome's.
-- KEYS[1] item hash, KEYS[2] outbox stream; ARGV[1] item id, ARGV[2] event id,
-- ARGV[3] how long the closed item stays (ms; 0: for ever).
-- Returns {0} unknown item, {1} already closed, {2, ends} not due yet (soft
-- close may have moved the end), {3, outbox id, event json} closed now,
-- {4} not checked against the event log on this instance (see instance).
local item, outbox = KEYS[1], KEYS[2]
if redis.call('EXISTS', item) == 0 then return {0} end
local f = redis.call('HMGET', item, 'res', 'ea', 'st', 'cur', 'bdr', 'cnt', 'seq', 'name', 'sp', 'inc', 'sa', 'ep', 'sel')
if f[12] ~= instance() then return {4} end
local res, ea, st = tonumber(f[1]), tonumber(f[2]), f[3]
local cur, bdr, cnt, seq = tonumber(f[4]), f[5], tonumber(f[6]), tonumber(f[7])
local name, sp, inc, sa = f[8], tonumber(f[9]), tonumber(f[10]), tonumber(f[11])
local seller = ''
if f[13] and f[13] ~= '' then seller = ',"seller_id":' .. str(f[13]) end
if st == 'closed' or st == 'cancelled' then return {1} end
local now, ts = clock()
if ea == 0 or now < ea then return {2, ea} end
local winner = ''
if cnt > 0 and bdr ~= '' and cur >= res then winner = ',"winner_id":' .. str(bdr) end
seq = seq + 1
redis.call('HSET', item, 'st', 'closed', 'seq', int(seq))
-- The archive answers for the item once it is gone; its event below is in
-- the outbox, which does not expire, until JetStream has it.
local keep = tonumber(ARGV[3])
if keep > 0 then redis.call('PEXPIRE', item, keep) end
local ev = '{"type":"auction_closed","event_id":' .. str(ARGV[2]) .. ',"item_id":' .. str(ARGV[1]) ..
  ',"amount":' .. money(cur) .. ',"previous_bid":0.00,"timestamp":"' .. ts ..
  '","seq":' .. int(seq) .. ',"ends_at":"' .. rfc3339ms(ea) .. '"' .. winner ..
  ',"bid_count":' .. int(cnt) ..
  -- The item's description, so that the archive holds the whole item.
  ',"name":' .. str(name) .. ',"starting_price":' .. money(sp) .. ',"min_increment":' .. money(inc) ..
  ',"reserve_price":' .. money(res) .. ',"starts_at":"' .. rfc3339ms(sa) .. '"' .. seller .. '}'
local oid = redis.call('XADD', outbox, '*', 'e', ev)
return {3, oid, ev}
