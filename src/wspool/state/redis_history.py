"""Channel history in Redis: one stream and one small hash per channel, kept by two scripts.

``PUBLISH_SCRIPT`` runs once per publish batch, for every channel in it (one call per group
of channels whose keys share a server, on a cluster a slot: :func:`publish_call`). In one
atomic step it takes each channel's next offsets (``HINCRBY`` on its meta hash), splices
each frame's ``"offset"`` in, appends the frames to the channel's history stream (trimmed by
length, ``MAXLEN ~``), and publishes them as one pub/sub message per channel (sharded
pub/sub on a cluster: ``SHARDED_PUBLISH_SCRIPT``). The age trim (``MINID ~`` on the
stream's time-based ids) and the keys' expiries are renewed only once per
``RENEWAL_SLACK`` of the ttl, as the meta hash's ``t`` records, so a steady publish costs
four Redis calls per channel (``HMGET``, ``HINCRBY``, ``XADD``, ``PUBLISH``) and one per
batch (``SET NX`` of its marker), and Lua's call overhead is paid once per batch. As nothing
can run between those steps, offsets follow the order in which every node receives the
frames, and what a recovery reads from the stream is exactly what was published.

The pub/sub message is ``"<epoch>:<first offset>"`` followed by the frames, one per line
(compact JSON holds no raw newline), so a node learns every frame's offset without parsing
any JSON. ``READ_SCRIPT`` reads a channel's position and the frames after a given one, again
atomically, and starts the epoch of a channel that has none; ``RECENT_SCRIPT`` reads its
position and its newest frames (the REST API's history without a position).

A publish that gets no answer (Redis frozen, the link cut after the request left) may or
may not have run. The node sends the same batch again, with the same batch id, until Redis
answers: the script records the batch id with the position it gave each channel's last
frame (in a marker key that lives ``BATCH_MARKER_TTL``, one per sender and channel:
:func:`batch_sender`), and a batch whose id the marker holds is not written again; the
script returns the recorded positions instead. Either way it answers the
position (``"<epoch>:<offset>"``) of each channel's last frame, in the call's channel order,
separated by spaces. So a publish is written once, or not at all.

A channel whose meta hash is gone (expired after ``HistoryPolicy.position_ttl`` of silence,
flushed, lost in a restart) gets a new random epoch with its next publish or read, and its
stale stream is dropped; positions of the old epoch then fail to recover, as they should.

On a Redis whose primary can be replaced (a cluster, Sentinel's primary: :func:`history_scripts`)
the meta hash also records its writer, the Redis that started the epoch (a cluster node's id,
the ``run_id`` of Sentinel's primary), and a script that runs on another (a replica promoted
after a failover, a slot moved to another shard, Sentinel's primary restarted) starts a new
epoch too: the writes that the old primary made but never replicated may be gone, and the
offsets they took would be given again to other frames. So clients that resume across a
failover get every frame or ``recovered: false``, never a silent gap (docs/recovery.md).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wspool.core.history import HistoryPolicy, HistoryRead, StreamPosition
from wspool.core.keys import Keys
from wspool.core.redisurl import RedisKind

__all__ = [
    "BATCH_MARKER_TTL",
    "PUBLISH_SCRIPT",
    "READ_SCRIPT",
    "RECENT_SCRIPT",
    "RENEWAL_SLACK",
    "HistoryScripts",
    "batch_sender",
    "history_scripts",
    "new_epoch",
    "publish_call",
    "publish_result",
    "read_args",
    "read_result",
    "recent_args",
    "recent_result",
    "split_message",
]

BATCH_MARKER_TTL = 600.0
"""Seconds a batch id is remembered: a node that resends a batch later than this after it
took effect (cut off from Redis for ten minutes just after its write) may write it twice."""

RENEWAL_SLACK = 0.125
"""The share of the history ttl by which a channel's expiry and age trim may lag: the script
renews them (``PEXPIRE`` on both keys, ``XTRIM MINID``) at most once per that much time of
publishing, with expiries longer by as much, instead of on every publish."""

# KEYS: the sender's batch marker, then stream and meta of each channel. ARGV: marker ttl ms
# ('0': no marker), ttl ms, position ttl ms, renewal slack ms, batch id, then for each
# channel: pub/sub channel, size, new epoch, frame count, its frames.
PUBLISH_SCRIPT = """
local writer = false
local marked = ARGV[1] ~= '0'
local batch = ARGV[5] .. ' '
if marked then
  local done = redis.call('GET', KEYS[1])
  if done and string.sub(done, 1, #batch) == batch then
    return string.sub(done, #batch + 1)
  end
end
local ttl = tonumber(ARGV[2])
local position_ttl = tonumber(ARGV[3])
local slack = tonumber(ARGV[4])
local a = 6
local positions = {}
for k = 2, #KEYS, 2 do
  local stream, metakey = KEYS[k], KEYS[k + 1]
  local size = tonumber(ARGV[a + 1])
  local count = tonumber(ARGV[a + 3])
  local meta = redis.call('HMGET', metakey, 'e', 't', 'w')
  local epoch = meta[1]
  local renewed = tonumber(meta[2]) or 0
  if not epoch or (writer and meta[3] ~= writer) then
    epoch = ARGV[a + 2]
    renewed = 0
    redis.call('DEL', stream)
    redis.call('HSET', metakey, 'e', epoch, 'o', 0, 'w', writer or '')
  end
  local last = redis.call('HINCRBY', metakey, 'o', count)
  local first = last - count + 1
  local splice = ',"offset":"' .. epoch .. ':'
  local out = {epoch .. ':' .. first}
  local id
  for i = 1, count do
    local frame = string.sub(ARGV[a + 3 + i], 1, -2) .. splice .. (first + i - 1) .. '"}'
    out[i + 1] = frame
    if size > 0 then
      id = redis.call('XADD', stream, 'MAXLEN', '~', size, '*', 'f', frame)
    end
  end
  if id then
    local now = tonumber(string.match(id, '^%d+'))
    if now - renewed >= slack then
      if now > ttl then
        redis.call('XTRIM', stream, 'MINID', '~', now - ttl)
      end
      redis.call('PEXPIRE', stream, ttl + slack)
      redis.call('HSET', metakey, 't', now)
      redis.call('PEXPIRE', metakey, position_ttl + slack)
    end
  else
    redis.call('PEXPIRE', metakey, position_ttl)
  end
  redis.call('PUBLISH', ARGV[a], table.concat(out, '\\n'))
  positions[#positions + 1] = epoch .. ':' .. last
  a = a + 4 + count
end
local answer = table.concat(positions, ' ')
if marked then
  redis.call('SET', KEYS[1], batch .. answer, 'PX', ARGV[1])
end
return answer
"""

# The reading scripts' start: the channel's epoch and last offset, the epoch started (and a
# stale stream dropped) when it has none. KEYS: stream, meta. ARGV: new epoch, position ttl ms.
_CURRENT_POSITION = """
local writer = false
local meta = redis.call('HMGET', KEYS[2], 'e', 'o', 'w')
local epoch = meta[1]
local top = tonumber(meta[2])
if not epoch or (writer and meta[3] ~= writer) then
  epoch = ARGV[1]
  top = 0
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0, 'w', writer or '')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
"""

# ARGV: …, since epoch ('' for none), since offset. Returns {epoch, top, complete (1/0), frames…}.
READ_SCRIPT = (
    _CURRENT_POSITION
    + """
local result = {epoch, top, 1}
if ARGV[3] == '' then
  return result
end
local since = tonumber(ARGV[4])
if ARGV[3] ~= epoch or since > top then
  result[3] = 0
  return result
end
local wanted = top - since
if wanted == 0 then
  return result
end
local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', wanted)
if #entries < wanted then
  result[3] = 0
  return result
end
for i = #entries, 1, -1 do
  result[#result + 1] = entries[i][2][2]
end
return result
"""
)

# ARGV: …, count. Returns {epoch, top, frames…}.
RECENT_SCRIPT = (
    _CURRENT_POSITION
    + """
local result = {epoch, top}
local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[3])
for i = #entries, 1, -1 do
  result[#result + 1] = entries[i][2][2]
end
return result
"""
)


_NO_WRITER = "local writer = false\n"
_WRITERS = {
    # The cluster node's id (0.3 µs): another after a failover or a slot move.
    RedisKind.CLUSTER: "local writer = redis.call('CLUSTER', 'MYID')\n",
    # The process's run_id (about 10 µs with the match): another after a failover or a restart.
    RedisKind.SENTINEL: (
        "local writer = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')\n"
    ),
}


@dataclass(frozen=True, slots=True)
class HistoryScripts:
    """The three scripts as one kind of Redis runs them."""

    publish: str
    read: str
    recent: str


def history_scripts(kind: RedisKind) -> HistoryScripts:
    """The scripts for ``kind``: on a cluster or Sentinel's primary they check the writer
    (and a cluster's publish uses sharded pub/sub)."""
    if kind is RedisKind.SINGLE:
        return HistoryScripts(PUBLISH_SCRIPT, READ_SCRIPT, RECENT_SCRIPT)
    publish, read, recent = (
        script.replace(_NO_WRITER, _WRITERS[kind], 1)
        for script in (PUBLISH_SCRIPT, READ_SCRIPT, RECENT_SCRIPT)
    )
    if kind is RedisKind.CLUSTER:
        publish = publish.replace("'PUBLISH'", "'SPUBLISH'")
    return HistoryScripts(publish, read, recent)


_EPOCHS = random.Random()  # seeded from os.urandom; epochs need to differ, not to be secret


def new_epoch() -> str:
    """A fresh epoch name: 8 random hex digits (collisions only matter within one channel).

    Every publish call carries one, for a channel that has none, so it is drawn from a
    generator seeded once, not from the system's random source (a system call each)."""
    return f"{_EPOCHS.getrandbits(32):08x}"


def batch_sender(batch_id: str) -> str:
    """Who sent a batch: its id up to the last ``.`` (``<sender>.<count>``), or all of it.

    The store keeps one marker per sender and channel, holding the sender's last batch
    there: a sender that sends its next batch only once its last one is settled (a node's
    :class:`~wspool.server.publisher.PublishBatcher`) only ever sends that one again, and
    leaves one marker per channel it publishes on, not one per batch."""
    sender, dot, _ = batch_id.rpartition(".")
    return sender if dot else batch_id


def publish_call(
    keys: Keys, policy: HistoryPolicy, batches: Mapping[str, Sequence[str]], batch_id: str
) -> tuple[list[str], list[str]]:
    """The KEYS and ARGV of one ``PUBLISH_SCRIPT`` call that publishes ``batches`` (frames
    per channel, in order), recorded under ``batch_id`` unless it is empty.

    Every key of one call must live on one Redis server (in a Redis Cluster, in one slot):
    the caller groups channels accordingly. The batch marker shares the first channel's.
    """
    first = next(iter(batches))
    script_keys = [keys.history_batch(first, batch_sender(batch_id) or "-")]
    args = [
        str(int(BATCH_MARKER_TTL * 1000)) if batch_id else "0",
        str(int(policy.ttl * 1000)),
        str(int(policy.position_ttl * 1000)),
        str(int(policy.ttl * RENEWAL_SLACK * 1000)),
        batch_id,
    ]
    epoch = new_epoch()  # for each channel that has none (epochs differ per channel only)
    for channel, frames in batches.items():
        script_keys += (keys.history(channel), keys.history_meta(channel))
        size = policy.for_channel(channel).size
        args += (keys.channel(channel), str(size), epoch, str(len(frames)), *frames)
    return script_keys, args


def publish_result(
    batches: Mapping[str, Sequence[str]], raw: str | bytes
) -> dict[str, StreamPosition]:
    """Each channel's last position from the answer of the ``PUBLISH_SCRIPT`` call that
    published ``batches`` (the same channels, in the same order)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(zip(batches, map(StreamPosition.parse, text.split(" ")), strict=True))


def read_args(policy: HistoryPolicy, since: StreamPosition | None) -> list[str]:
    return [
        new_epoch(),
        str(int(policy.position_ttl * 1000)),
        since.epoch if since is not None else "",
        str(since.offset) if since is not None else "0",
    ]


def read_result(raw: list[Any], since: StreamPosition | None) -> HistoryRead:
    top = StreamPosition(str(raw[0]), int(raw[1]))
    if since is None:
        return HistoryRead(top, [])
    return HistoryRead(top, [str(f) for f in raw[3:]] if int(raw[2]) else None)


def recent_args(policy: HistoryPolicy, count: int) -> list[str]:
    return [new_epoch(), str(int(policy.position_ttl * 1000)), str(count)]


def recent_result(raw: list[Any]) -> HistoryRead:
    return HistoryRead(StreamPosition(str(raw[0]), int(raw[1])), [str(f) for f in raw[2:]])


def split_message(data: str) -> tuple[StreamPosition, list[str]]:
    """A pub/sub message of the publish script: the first frame's position, the frames."""
    header, _, body = data.partition("\n")
    epoch, _, first = header.rpartition(":")
    return StreamPosition(epoch, int(first)), body.split("\n")
