-- KEYS[1] an item's outbox stream; ARGV the ids of entries JetStream has
-- stored (none: only tidy up). Deletes them, and the stream once it is
-- empty, so that an item with nothing waiting keeps no key and the orphan
-- scan passes it by. Being one script, the check and the DEL cannot
-- interleave with a bid's append. Returns the entries left.
local outbox = KEYS[1]
-- unpack's arguments live on Lua's C stack, which holds a few thousand.
for i = 1, #ARGV, 512 do
  redis.call('XDEL', outbox, unpack(ARGV, i, math.min(i + 511, #ARGV)))
end
local left = redis.call('XLEN', outbox)
if left == 0 then
  redis.call('DEL', outbox)
end
return left
