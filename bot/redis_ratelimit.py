"""Token-bucket rate limits shared by every server process, in Redis.

One hash per key (``<prefix>rl:<key>``: tokens, stamp) updated by a Lua script, so a check and
its update are one atomic step however many processes ask at once. Time comes from the Redis
server (``TIME``), so the processes' clocks do not matter. A bucket expires once it would have
refilled completely: idle keys cost no memory.

If Redis cannot be reached the request is allowed (and the failure logged): a limiter outage
should not take the service down with it.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("deskbot.ratelimit")

# KEYS[1]: bucket; ARGV: rate (tokens/s), burst. Returns the wait in seconds as a string
# (0 when allowed), since Lua numbers returned to Redis would be truncated to integers.
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """:class:`~bot.ratelimit.RateLimiter` whose buckets every process shares."""

    def __init__(self, url: str, *, prefix: str = "deskbot:") -> None:
        self._client: redis.Redis = redis.Redis.from_url(url)
        self._script = self._client.register_script(TOKEN_BUCKET)
        self._prefix = f"{prefix}rl:"
        self._last_warning = 0.0

    async def hit(self, key: str, rate: float, burst: int) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is available."""
        try:
            wait = await self._script(keys=[self._prefix + key], args=[repr(rate), burst])
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._last_warning > 10:
                self._last_warning = now
                log.error("rate limiter unavailable, allowing requests: %s", exc)
            return 0.0
        return float(wait)

    async def close(self) -> None:
        await self._client.aclose()
