"""The Lua that updates one behavioural series in Redis, shared by every script that writes events
(``RedisStore.record``'s, and the one keeping served decisions with their impressions), and the Lua
that names the series in the user's series index (how erasure finds them; see ``redis_users.py``)."""

# One series update: add ``count`` events totalling ``total`` to a bucket, keep the day series' latest
# event time, outlive the bucket's windows (``ttl`` ms) and drop the buckets older than ``oldest`` once
# the series holds more than ``prune`` fields. Shared by every script that writes behavioural events.
SERIES_ADD = """
local function series_add(key, bucket, count, total, ttl, oldest, prune, ts)
  redis.call('HINCRBY', key, bucket, count)
  redis.call('HINCRBYFLOAT', key, bucket .. 't', total)
  if ts ~= '' then
    local last = redis.call('HGET', key, 'last')
    if not last or tonumber(last) < tonumber(ts) then
      redis.call('HSET', key, 'last', ts)
    end
  end
  ttl = tonumber(ttl)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
  if redis.call('HLEN', key) > tonumber(prune) then
    oldest = tonumber(oldest)
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local b = tonumber(string.match(field, '^-?%d+'))
      if b and b < oldest then
        redis.call('HDEL', key, field)
      end
    end
  end
end
"""

# Name series in a user's series index (``{USER}:k``), a set of ``TYPE:KEY`` names: add ``names`` (a Lua
# table) and make the index outlive the longest of their TTLs (``ttl`` ms). Called with the series updates,
# in the same script, so no series kept is ever missing from the index.
SERIES_INDEX = """
local function series_index(index, names, ttl)
  if #names == 0 then
    return
  end
  redis.call('SADD', index, unpack(names))
  ttl = tonumber(ttl)
  if redis.call('PTTL', index) < ttl then
    redis.call('PEXPIRE', index, ttl)
  end
end
"""
