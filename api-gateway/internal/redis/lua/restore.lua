-- Brings an item up to its last published event and marks it checked on
-- this instance, so that no bid is decided on state older than what viewers
-- and the archive already have. A lost Redis must never reissue a seq or
-- accept a bid at or below a published price.
-- KEYS[1] item hash. ARGV: id, name, starting price, increment, reserve,
-- starts at (ms), ends at (ms), then the last event's seq (0: none),
-- amount, bidder, bid count, ends at (ms, 0: unknown), closed (1/0), how
-- long a closed item stays (ms; 0: for ever).
-- ARGV[15] '1' if the last event cancelled the auction (then closed is 0),
-- ARGV[16] the seller id from the record ('' if none).
-- ARGV[17] the leader's maximum logged beside the last event (cents; 0:
-- none).
-- Returns {1, moved} for an item that existed (moved: 1 if the log was
-- ahead of it), {2} for an item recreated from the record, {0} for an item
-- neither Redis nor the record knows (no name).
local item = KEYS[1]
local lseq, lcur, lbdr = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local lcnt, lea, lclosed = tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[13] == '1'
local lcancelled = ARGV[15] == '1'
local lmx = tonumber(ARGV[17])
local run = instance()
if redis.call('EXISTS', item) == 1 then
  local seq = tonumber(redis.call('HGET', item, 'seq'))
  local moved = 0
  -- A Redis ahead of the log holds events its outbox has yet to publish:
  -- it is right. Behind the log, it lost what the log already has.
  if lseq > seq then
    moved = 1
    redis.call('HSET', item, 'cur', int(lcur), 'bdr', lbdr, 'cnt', int(lcnt), 'seq', int(lseq), 'mx', int(lmx))
    if lea > 0 then redis.call('HSET', item, 'ea', int(lea)) end
    if lclosed then redis.call('HSET', item, 'st', 'closed') end
    if lcancelled then redis.call('HSET', item, 'st', 'cancelled') end
  end
  redis.call('HSET', item, 'ep', run)
  return {1, moved}
end
if ARGV[2] == '' then return {0} end
local ea = tonumber(ARGV[7])
if lea > 0 then ea = lea end
local st = 'open'
if lclosed then st = 'closed' end
if lcancelled then st = 'cancelled' end
redis.call('HSET', item, 'id', ARGV[1], 'name', ARGV[2], 'sp', ARGV[3], 'inc', ARGV[4], 'res', ARGV[5],
  'sa', ARGV[6], 'ea', int(ea), 'st', st, 'cur', int(lcur), 'bdr', lbdr, 'cnt', int(lcnt), 'seq', int(lseq), 'ep', run, 'sel', ARGV[16],
  'mx', int(lmx), 'oe', ARGV[7])
local keep = tonumber(ARGV[14])
if (lclosed or lcancelled) and keep > 0 then redis.call('PEXPIRE', item, keep) end
return {2}
