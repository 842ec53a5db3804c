-- Reads an item with its status at this server's clock.
-- KEYS[1] item hash. Returns {} if unknown, else the hash's fields and values
-- followed by 'status' and the computed status, and 'checked': '1' if the
-- item was checked against the event log on this instance, else '0'.
local f = redis.call('HGETALL', KEYS[1])
if #f == 0 then return f end
local h = {}
for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
local now = clock()
f[#f + 1] = 'status'
f[#f + 1] = status(h.st, tonumber(h.sa), tonumber(h.ea), now)
f[#f + 1] = 'checked'
f[#f + 1] = (h.ep == instance()) and '1' or '0'
return f
