"""The synthetic logs of ``offline_eval.generator``, row for row, computed with numpy instead of Spark.

The Spark generator draws every random number as ``xxhash64(seed, salt, keys)`` turned into a
uniform, so its output is a pure function of the scenario. This module re-implements Spark's
xxhash64 (``XXH64`` with its type-dependent chaining) and the few Spark semantics that shape
the values (``floor`` to bigint, ``round`` HALF_UP on the decimal string, the ``where``
filters, the joins), then builds one day at a time as pyarrow tables:

    for chunk in generate_day(scenario, k, chunk_sessions=100_000):
        write(chunk)  # {"users": pa.Table, ..., "orders": pa.Table}, contract columns without ds

Each helper below mirrors one function of generator.py; the comments say where a Spark detail
decides a value. tests/test_fastgen.py checks the two generators against each other.

Floating point: numpy uses the platform libm, Spark ``StrictMath`` (fdlibm: exp, log, pow) and
``java.lang.Math`` (cos, sqrt). They differ in the last bit for about 10% of exp/log/pow results
and 0.2% of cos results, but every such value passes through a floor, a comparison or a
``round`` before it reaches an output, and moves it only when it sits within an ulp of that
boundary: nudging all of them by one ulp changes none of the 9.9M rows of the 21-day demo.
"""
from __future__ import annotations

import datetime as dt
import decimal
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from offline_eval.contract import INPUT_TABLES
from offline_eval.generator import (
    CRAWLER_SOURCE,
    DEVICES,
    NEW_WINDOW_DAYS,
    REGIONS,
    SLOTS_PER_REQUEST,
    USER_APPEAL_SD,
    Scenario,
    _position_weights,
)

__all__ = ["TABLES", "HashRng", "arrow_schema", "chain_hash", "generate_day", "hash_uniform", "spark_round",
           "to_uniform", "xxhash64"]

# ---------------------------------------------------------------------------------------------
# Spark's xxhash64 (org.apache.spark.sql.catalyst.expressions.XXH64), vectorised over uint64.
# numpy uint64 arrays wrap on overflow like Java longs; scalars would warn, so every hash state
# is kept as an array (shape (1,) for a constant).
# ---------------------------------------------------------------------------------------------

_U64 = np.uint64
_P1 = _U64(0x9E3779B185EBCA87)
_P2 = _U64(0xC2B2AE3D27D4EB4F)
_P3 = _U64(0x165667B19E3779F9)
_P4 = _U64(0x85EBCA77C2B2AE63)
_P5 = _U64(0x27D4EB2F165667C5)
SPARK_HASH_SEED = 42  # the default seed of Spark's xxhash64(...)
_MASK53 = _U64((1 << 53) - 1)
_TWO53 = float(1 << 53)

# A hash input: int32 / int64 numpy values (scalar or array), or strings (Python str, sequence
# of str, or a pyarrow string array). Python ints follow F.lit: int if it fits, else bigint.
HashColumn = int | str | np.ndarray | np.integer | Sequence[str] | pa.Array | pa.ChunkedArray


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U64(r)) | (x >> _U64(64 - r))


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * _P2
    h = h ^ (h >> _U64(29))
    h = h * _P3
    return h ^ (h >> _U64(32))


def _hash_int(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """XXH64.hashInt: the int is zero-extended (input & 0xFFFFFFFFL)."""
    h = seed + _P5 + _U64(4)
    h = h ^ (values.view(np.uint32).astype(np.uint64) * _P1)
    return _fmix(_rotl(h, 23) * _P2 + _P3)


def _hash_long(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    h = seed + _P5 + _U64(8)
    h = h ^ (_rotl(values.view(np.uint64) * _P2, 31) * _P1)
    return _fmix(_rotl(h, 27) * _P1 + _P4)


def _round(acc: np.ndarray, lane: np.ndarray) -> np.ndarray:
    return _rotl(acc + lane * _P2, 31) * _P1


def _hash_fixed_length(data: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """XXH64.hashUnsafeBytes of m byte strings of one length L, given as an (m, L) uint8 matrix."""
    length = data.shape[1]
    n_words = length // 8
    words = np.ascontiguousarray(data[:, : n_words * 8]).view("<u8")  # little-endian getLong
    w = 0
    if length >= 32:
        v1, v2, v3, v4 = seed + _P1 + _P2, seed + _P2, seed + _U64(0), seed - _P1
        while (w + 4) * 8 <= length:  # 32-byte stripes
            v1, v2 = _round(v1, words[:, w]), _round(v2, words[:, w + 1])
            v3, v4 = _round(v3, words[:, w + 2]), _round(v4, words[:, w + 3])
            w += 4
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h = (h ^ _round(_U64(0), v)) * _P1 + _P4
    else:
        h = seed + _P5
    h = h + _U64(length)
    for i in range(w, n_words):
        h = h ^ (_rotl(words[:, i] * _P2, 31) * _P1)
        h = _rotl(h, 27) * _P1 + _P4
    offset = n_words * 8
    if offset + 4 <= length:
        word = np.ascontiguousarray(data[:, offset : offset + 4]).view("<u4")[:, 0]
        h = h ^ (word.astype(np.uint64) * _P1)
        h = _rotl(h, 23) * _P2 + _P3
        offset += 4
    for i in range(offset, length):
        h = h ^ (data[:, i].astype(np.uint64) * _P5)
        h = _rotl(h, 11) * _P1
    return _fmix(h)


def _utf8_layout(strings: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, start of each string, length of each string) of an Arrow string array."""
    if strings.null_count:
        raise ValueError("xxhash64 of strings with nulls is not supported (Spark skips them)")
    if pa.types.is_large_string(strings.type):
        offset_type = np.int64
    else:
        strings = strings.cast(pa.string())
        offset_type = np.int32
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, offset_type)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    offsets = offsets.astype(np.int64)
    return data, offsets[:-1], np.diff(offsets)


def _hash_strings(strings: pa.Array, seed: np.ndarray) -> np.ndarray:
    """hashUnsafeBytes of each string's UTF-8 bytes, grouping strings of equal length."""
    data, starts, lengths = _utf8_layout(strings)
    seeds = np.broadcast_to(seed, lengths.shape)
    out = np.empty(len(lengths), np.uint64)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        matrix = data[starts[rows, None] + np.arange(length)]
        out[rows] = _hash_fixed_length(matrix, seeds[rows])
    return out


def _as_hash_input(col: HashColumn) -> tuple[str, np.ndarray | pa.Array]:
    """Classify a column as Spark would type it: int, bigint or string."""
    if isinstance(col, str):
        return "string", pa.array([col], pa.string())
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col, pa.Array):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return "string", col
        col = col.to_numpy(zero_copy_only=False)
    if isinstance(col, int) and not isinstance(col, bool):
        # Like F.lit: an int literal is IntegerType when it fits, LongType otherwise.
        col = np.int32(col) if -(2**31) <= col < 2**31 else np.int64(col)
    if isinstance(col, (list, tuple)):
        return "string", pa.array(col, pa.string())
    values = np.atleast_1d(np.asarray(col))
    if values.dtype == np.int32:
        return "int", values
    if values.dtype == np.int64:
        return "bigint", values
    if values.dtype.kind in "UO":
        return "string", pa.array(values.tolist(), pa.string())
    raise TypeError(f"xxhash64 input must be int32, int64 or string, not {values.dtype}")


def chain_hash(state: np.ndarray | int, *cols: HashColumn) -> np.ndarray:
    """Continue a Spark ``xxhash64(c1, c2, ...)``: each column hashes with the previous hash as
    its seed. Returns the uint64 state (shape (1,) if every input is a scalar)."""
    h = np.atleast_1d(np.asarray(state, dtype=np.uint64))
    for col in cols:
        kind, values = _as_hash_input(col)
        if kind == "int":
            h = _hash_int(values, h)
        elif kind == "bigint":
            h = _hash_long(values, h)
        else:
            h = _hash_strings(values, h)
    return h


def xxhash64(*cols: HashColumn, seed: int = SPARK_HASH_SEED) -> np.ndarray:
    """Spark's ``F.xxhash64(*cols)`` as a signed int64 array (columns broadcast together)."""
    return chain_hash(np.uint64(seed % 2**64), *cols).view(np.int64)


def to_uniform(h: np.ndarray) -> np.ndarray:
    """The generator's hash -> [0, 1): the low 53 bits over 2^53 (exact in double)."""
    return (h & _MASK53).astype(np.float64) / _TWO53


class HashRng:
    """numpy twin of ``generator._Rng``: uniform(salt, *keys) = xxhash64(seed, salt, *keys) -> [0, 1)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._salt_states: dict[str, np.ndarray] = {}

    def start(self, salt: str) -> np.ndarray:
        """Hash state after the two literals F.lit(seed) (an int) and F.lit(salt): a constant."""
        if salt not in self._salt_states:
            self._salt_states[salt] = chain_hash(np.uint64(SPARK_HASH_SEED), self.seed, salt)
        return self._salt_states[salt]

    def uniform(self, salt: str, *cols: HashColumn) -> np.ndarray:
        return to_uniform(chain_hash(self.start(salt), *cols))

    def normal(self, salt: str, *cols: HashColumn) -> np.ndarray:
        return box_muller(self.uniform(salt + ":1", *cols), self.uniform(salt + ":2", *cols))

    def choice(self, salt: str, options: Sequence[str], weights: Sequence[float], *cols: HashColumn) -> Categorical:
        return choose(self.uniform(salt, *cols), options, weights)


def hash_uniform(seed: int, salt: str, *cols: HashColumn) -> np.ndarray:
    """``generator._Rng(seed).uniform(salt, *cols)`` for numpy / Arrow columns."""
    return HashRng(seed).uniform(salt, *cols)


def box_muller(u1_raw: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """_Rng.normal from its two uniforms, in Spark's evaluation order."""
    u1 = 1.0 - u1_raw  # (0, 1]
    return np.sqrt(-2.0 * np.log(u1)) * np.cos((2 * math.pi) * u2)


# ---------------------------------------------------------------------------------------------
# Other Spark semantics
# ---------------------------------------------------------------------------------------------


def floor(x: np.ndarray) -> np.ndarray:
    """F.floor of a double is a bigint."""
    return np.floor(x).astype(np.int64)


def strict_pow(x: np.ndarray, y: float) -> np.ndarray:
    # StrictMath.pow (fdlibm) special-cases y == 2 as x * x; other exponents use numpy's pow,
    # which can differ from fdlibm in the last bit (only visible at a floor boundary).
    return x * x if y == 2.0 else np.power(x, y)


_NEAR_TIE = 2.0**-40  # relative; the product |x| * 10^scale is off by at most ~2^-51 relative


def spark_round(x: np.ndarray, scale: int) -> np.ndarray:
    """Spark's ``round(double, scale)``: ``BigDecimal(Double.toString(x)).setScale(scale, HALF_UP)``.

    Rounds |x| * 10^scale half up; where that product is too close to a tie (or too large) for
    its rounding error to be harmless, rounds the shortest decimal string exactly instead.
    """
    x = np.asarray(x, dtype=np.float64)
    p = 10.0**scale
    y = np.abs(x) * p
    whole = np.floor(y)
    frac = y - whole
    rounded = whole + (frac >= 0.5)
    out = np.where(x < 0, -rounded, rounded) / p
    out = np.where(rounded == 0, 0.0, out)  # BigDecimal has no negative zero
    finite = np.isfinite(x)
    out = np.where(finite, out, x)  # Spark returns NaN and infinities unchanged
    slow = finite & ((np.abs(frac - 0.5) <= _NEAR_TIE * np.maximum(y, 1.0)) | (y >= 2.0**50))
    for i in np.flatnonzero(slow):
        out[i] = _round_decimal_string(float(x[i]), scale)
    return out


def _round_decimal_string(value: float, scale: int) -> float:
    # repr is the shortest round-trip string; Java's Double.toString (JDK < 19) is sometimes
    # longer, which could only matter if that string fell on the other side of the tie.
    quantum = decimal.Decimal(1).scaleb(-scale)
    result = float(decimal.Decimal(repr(value)).quantize(quantum, rounding=decimal.ROUND_HALF_UP))
    return result + 0.0  # -0.0 -> 0.0


@dataclass(frozen=True)
class Categorical:
    """A string column as codes into a small tuple of labels (cheap to filter, take and merge)."""

    codes: np.ndarray
    labels: tuple[str, ...]

    def take(self, idx: np.ndarray) -> Categorical:
        return Categorical(self.codes[idx], self.labels)

    def where(self, mask: np.ndarray, other: Categorical) -> Categorical:
        """F.when(mask, self).otherwise(other)."""
        labels = tuple(dict.fromkeys(self.labels + other.labels))
        mine = np.array([labels.index(v) for v in self.labels], np.int64)
        theirs = np.array([labels.index(v) for v in other.labels], np.int64)
        return Categorical(np.where(mask, mine[self.codes], theirs[other.codes]), labels)

    def to_arrow(self) -> pa.Array:
        return pa.array(self.labels, pa.string()).take(pa.array(self.codes))


def choose(u: np.ndarray, options: Sequence[str], weights: Sequence[float]) -> Categorical:
    """_Rng.choice: a CASE WHEN cascade on cumulative weights summed in the same float order."""
    total = sum(weights)
    cum, thresholds = 0.0, []
    for weight in weights[:-1]:
        cum += weight / total
        thresholds.append(cum)
    codes = np.full(u.shape, len(options) - 1, np.int64)
    for i in reversed(range(len(thresholds))):  # the first matching WHEN wins
        codes = np.where(u < thresholds[i], i, codes)
    return Categorical(codes, tuple(options))


# ---------------------------------------------------------------------------------------------
# Users and items: the whole catalogue of the scenario, computed once and cached
# ---------------------------------------------------------------------------------------------

# Literal weights and options of generator._users (kept in step by tests/test_fastgen.py).
_REGION_WEIGHTS = (0.2, 0.18, 0.15, 0.13, 0.12, 0.1, 0.07, 0.05)
_REGION_WEIGHTS_PROMO = (0.05, 0.05, 0.05, 0.05, 0.1, 0.2, 0.25, 0.25)
_CHANNELS = (("organic", "referral", "paid_search"), (0.6, 0.15, 0.25))
_CHANNELS_PROMO = (("promo_ad", "organic", "referral"), (0.75, 0.15, 0.10))


@dataclass(frozen=True)
class _Users:
    """Every user of the scenario, ascending user_id, plus the per-user draws of _impressions."""

    user_id: np.ndarray  # int64
    signup_offset: np.ndarray  # int32, days from sc.start
    region: Categorical
    channel: Categorical
    row_of: np.ndarray  # user_id -> row, -1 for ids in a signup block's unused tail
    treatment_draw: np.ndarray  # uniform("assign", user_id)
    appeal: np.ndarray
    new_orders_90d: np.ndarray  # the is_new branch of f_user_orders_90d
    old_orders_90d: np.ndarray
    new_sessions_draw: np.ndarray  # uniform("s7n", user_id), scaled by tenure per impression
    old_sessions_7d: np.ndarray
    avg_order_value: np.ndarray  # rounded, used where orders_90d > 0


def _users(sc: Scenario, rng: HashRng) -> _Users:
    """generator._users: base users, then one signup block per day (partly used)."""
    block = max(sc.signups_per_day, sc.promo_signups_per_day)
    base_id = np.arange(sc.base_users, dtype=np.int64)
    base_offset = -(8 + floor(rng.uniform("signup", base_id) * 720)).astype(np.int32)
    j = np.arange((sc.days + NEW_WINDOW_DAYS - 1) * block, dtype=np.int64)
    new_offset = (floor(j / block) - (NEW_WINDOW_DAYS - 1)).astype(np.int32)
    used = (j % block) < _block_size(sc, new_offset, sc.signups_per_day, sc.promo_signups_per_day)
    uid = np.concatenate([base_id, j[used] + sc.base_users])
    offset = np.concatenate([base_offset, new_offset[used]])
    promo_user = np.concatenate([np.zeros(sc.base_users, bool), new_offset[used] >= sc.promo_day])
    row_of = np.full(sc.base_users + len(j), -1, np.int64)
    row_of[uid] = np.arange(len(uid))
    region = rng.choice("region_p", REGIONS, _REGION_WEIGHTS_PROMO, uid).where(
        promo_user, rng.choice("region", REGIONS, _REGION_WEIGHTS, uid)
    )
    channel = rng.choice("acq_p", *_CHANNELS_PROMO, uid).where(promo_user, rng.choice("acq", *_CHANNELS, uid))
    return _Users(
        user_id=uid,
        signup_offset=offset,
        region=region,
        channel=channel,
        row_of=row_of,
        treatment_draw=rng.uniform("assign", uid),
        appeal=np.exp(USER_APPEAL_SD * rng.normal("appeal", uid) - USER_APPEAL_SD**2 / 2),
        new_orders_90d=(rng.uniform("o90n", uid) < 0.1).astype(np.int64),
        old_orders_90d=np.maximum(0, floor(np.exp(0.7 + 0.9 * rng.normal("o90", uid))) - 1),
        new_sessions_draw=rng.uniform("s7n", uid),
        old_sessions_7d=1 + floor(np.exp(1.2 + 0.7 * rng.normal("s7", uid))),
        avg_order_value=spark_round(np.exp(math.log(45.0) + 0.5 * rng.normal("aov", uid)), 2),
    )


def _block_size(sc: Scenario, offset: np.ndarray, per_day: int, promo_per_day: int) -> np.ndarray:
    return np.where(offset >= sc.promo_day, promo_per_day, per_day)


@dataclass(frozen=True)
class _Items:
    """Every item of the scenario; item_id is the row number (0 .. base + new - 1)."""

    listed_offset: np.ndarray  # int32
    category: Categorical
    price: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.listed_offset)


def _items(sc: Scenario, rng: HashRng) -> _Items:
    """generator._items: base catalogue plus daily listings, lognormal prices."""
    base_id = np.arange(sc.base_items, dtype=np.int64)
    base_offset = -((NEW_WINDOW_DAYS + 1) + floor(rng.uniform("listed", base_id) * 365))
    j = np.arange((sc.days + NEW_WINDOW_DAYS - 1) * sc.new_items_per_day, dtype=np.int64)
    new_offset = floor(j / sc.new_items_per_day) - (NEW_WINDOW_DAYS - 1)
    iid = np.arange(sc.base_items + len(j), dtype=np.int64)
    cat_idx = floor(strict_pow(rng.uniform("cat", iid), 1.5) * sc.categories)
    mu = math.log(15.0) + (cat_idx % 9) * 0.25
    labels = tuple(f"cat_{i:02d}" for i in range(int(cat_idx.max(initial=0)) + 1))
    return _Items(
        listed_offset=np.concatenate([base_offset, new_offset]).astype(np.int32),
        category=Categorical(cat_idx, labels),
        price=spark_round(np.exp(mu + 0.6 * rng.normal("price", iid)), 2),
        quality=np.exp(0.5 * rng.normal("quality", iid) - 0.125),
    )


@dataclass(frozen=True)
class _World:
    rng: HashRng
    users: _Users
    items: _Items


@functools.lru_cache(maxsize=4)
def _world(sc: Scenario) -> _World:
    rng = HashRng(sc.seed)
    return _World(rng, _users(sc, rng), _items(sc, rng))


# ---------------------------------------------------------------------------------------------
# One day
# ---------------------------------------------------------------------------------------------

_EPOCH = dt.date(1970, 1, 1)
_US = 1_000_000  # microseconds per second


@dataclass(frozen=True)
class _Day:
    """A row of generator._days."""

    k: np.int32  # F.col("k") is an int: it hashes with hashInt
    ds: str
    epoch_day: int
    promo: bool
    in_experiment: bool

    @classmethod
    def of(cls, sc: Scenario, k: int) -> _Day:
        date = sc.start_date + dt.timedelta(days=k)
        return cls(np.int32(k), date.isoformat(), (date - _EPOCH).days, k >= sc.promo_day, k >= sc.experiment_day)


def _session_count(sc: Scenario, day: _Day) -> int:
    """How many session indexes s pass ``s < requests / (1.0 - share_new * gap)``."""
    requests = sc.impressions_per_day // SLOTS_PER_REQUEST
    share_max = max(sc.new_user_share, sc.promo_new_user_share)
    gap_max = max(sc.coverage_gap, sc.promo_coverage_gap)
    per_day = math.ceil(requests / (1 - share_max * gap_max))
    share_new, gap = _share_and_gap(sc, day)
    limit = requests / (1.0 - share_new * gap)  # the same double Spark compares s against
    return min(per_day, max(0, math.ceil(limit)))  # integer s < limit  <=>  s < ceil(limit)


def _share_and_gap(sc: Scenario, day: _Day) -> tuple[float, float]:
    if day.promo:
        return sc.promo_new_user_share, sc.promo_coverage_gap
    return sc.new_user_share, sc.coverage_gap


@dataclass(frozen=True)
class _Sessions:
    """One chunk of generator._sessions (already joined with users), one entry per session."""

    s: np.ndarray  # int64
    is_new: np.ndarray
    served: np.ndarray
    user_id: np.ndarray
    user_row: np.ndarray  # row in _Users
    treatment: np.ndarray  # variant == "treatment"
    hour: np.ndarray  # int32
    start_us: np.ndarray  # session_start_ts, microseconds since the epoch
    platform: Categorical
    traffic_source: Categorical


def _sessions(sc: Scenario, world: _World, day: _Day, s: np.ndarray) -> _Sessions:
    rng, users, k = world.rng, world.users, day.k
    block = max(sc.signups_per_day, sc.promo_signups_per_day)
    share_new, gap = _share_and_gap(sc, day)
    is_new = rng.uniform("is_new", k, s) < share_new
    signup_offset = k - floor(rng.uniform("age", k, s) * NEW_WINDOW_DAYS)
    new_block = _block_size(sc, signup_offset, sc.signups_per_day, sc.promo_signups_per_day)
    new_uid = (
        sc.base_users + (signup_offset + NEW_WINDOW_DAYS - 1) * block + floor(rng.uniform("new_uid", k, s) * new_block)
    )
    old_uid = floor(strict_pow(rng.uniform("old_uid", k, s), 1.5) * sc.base_users)
    user_id = np.where(is_new, new_uid, old_uid)
    user_row = _lookup(users.row_of, user_id)
    if (user_row < 0).any():
        # Spark's left join would leave signup_date/region null; only a scenario without
        # signups (signups_per_day == 0) gets here.
        raise NotImplementedError("sessions of users that do not exist (no signups) are not supported")
    hour = (8 + floor(rng.uniform("hour", k, s) * 14)).astype(np.int32)
    start_s = day.epoch_day * 86_400 + hour.astype(np.int64) * 3600 + floor(rng.uniform("minute", k, s) * 3600)
    promo_new = is_new & day.promo
    return _Sessions(
        s=s,
        is_new=is_new,
        served=~(is_new & (rng.uniform("gap", k, s) < gap)),
        user_id=user_id,
        user_row=user_row,
        treatment=day.in_experiment & (users.treatment_draw[user_row] >= 0.5),
        hour=hour,
        start_us=start_s * _US,
        platform=rng.choice("dev_p", DEVICES, (0.1, 0.3, 0.05, 0.55), k, s).where(
            promo_new, rng.choice("dev", DEVICES, (0.35, 0.35, 0.2, 0.1), k, s)
        ),
        traffic_source=_traffic_source(rng, k, s, is_new, promo_new),
    )


def _traffic_source(rng: HashRng, k: np.int32, s: np.ndarray, is_new: np.ndarray, promo_new: np.ndarray) -> Categorical:
    promo = rng.choice("src_p", ("promo_ad", "organic", "search", "push"), (0.75, 0.1, 0.1, 0.05), k, s)
    new = rng.choice("src_n", ("organic", "search", "promo_ad", "push"), (0.4, 0.3, 0.25, 0.05), k, s)
    old = rng.choice("src", ("organic", "push", "search", "promo_ad"), (0.55, 0.2, 0.2, 0.05), k, s)
    return promo.where(promo_new, new.where(is_new, old))


def _lookup(row_of: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row of each id in a dense id -> row table, -1 when absent (the join finds no match)."""
    inside = (ids >= 0) & (ids < len(row_of))
    rows = np.full(ids.shape, -1, np.int64)
    rows[inside] = row_of[ids[inside]]
    return rows


def _session_ids(day: _Day, s: np.ndarray, suffix: str | None = None) -> pa.Array:
    """concat_ws("-", ds, "s", s) [+ "-" + suffix]: session_id, or request_id with suffix "r"."""
    parts = [f"{day.ds}-s", pa.array(s).cast(pa.string())]
    return pc.binary_join_element_wise(*parts, *([suffix] if suffix else []), "-")


@dataclass(frozen=True)
class _Impressions:
    """generator._impressions for the served sessions of one chunk: one entry per shown item."""

    req: np.ndarray  # index of the row's request among the served sessions
    sess: np.ndarray  # index of the row's session in the chunk
    item_id: np.ndarray
    p_click: np.ndarray
    columns: dict[str, object]  # the impressions table's columns


def _impressions(sc: Scenario, world: _World, day: _Day, sess: _Sessions) -> tuple[_Impressions, pa.Array]:
    rng, users, items, k = world.rng, world.users, world.items, day.k
    served = np.flatnonzero(sess.served)
    request_ids = _session_ids(day, sess.s[served], "r")
    req = np.repeat(np.arange(len(served)), SLOTS_PER_REQUEST)
    position = np.tile(np.arange(1, SLOTS_PER_REQUEST + 1, dtype=np.int32), len(served))
    item_id, new_slot = _draw_items(sc, rng, k, sess.s[served][req], position)
    # Inner join with items: a drawn id without an item (e.g. no new listings) drops the row.
    shown = (item_id >= 0) & (item_id < len(items))
    req, position, item_id, new_slot = req[shown], position[shown], item_id[shown], new_slot[shown]
    row = served[req]  # session of each impression
    user = sess.user_row[row]
    is_new = sess.is_new[row]
    treatment = sess.treatment[row]
    item_age = (day.k - items.listed_offset[item_id]).astype(np.int32)  # datediff(date, first_listed_date)
    ctr_7d = np.where(item_age < NEW_WINDOW_DAYS, 0.05, _item_ctr_7d(rng, items, k, item_id))
    pos_factor = np.asarray(_position_weights())[position - 1]
    item_factor = np.where(new_slot, sc.new_item_ctr_factor, 1.0) * items.quality[item_id] * users.appeal[user]
    p_click, p_model = _click_probability(sc, day, is_new, treatment, pos_factor, item_factor)
    score = _model_score(rng, request_ids, req, position, p_model, treatment)
    variant = Categorical(treatment.astype(np.int64), ("control", "treatment"))
    columns = {
        "request_id": request_ids.take(pa.array(req)),
        "user_id": sess.user_id[row],
        "item_id": item_id,
        "position": position,
        "score": score,
        "model_name": pa.repeat(pa.scalar(sc.model_name), len(req)),
        "model_version": Categorical(variant.codes, (sc.control_version, sc.treatment_version)),
        "experiment_id": _experiment_ids(sc, day, len(req)),
        "variant": variant,
        "impression_ts": sess.start_us[row] + 2 * _US,
        **_user_features(users, day, user, is_new),
        "f_item_price": items.price[item_id],
        "f_item_age_days": item_age,
        "f_item_ctr_7d": ctr_7d,
        "f_hour": sess.hour[row],
        "c_device": sess.platform.take(row),
        "c_region": users.region.take(user),
        "c_item_category": items.category.take(item_id),
        "c_traffic_source": sess.traffic_source.take(row),
    }
    return _Impressions(req, row, item_id, p_click, columns), request_ids


def _user_features(users: _Users, day: _Day, user: np.ndarray, is_new: np.ndarray) -> dict[str, object]:
    """The f_user_* columns: per-user draws, the new-user or returning-user one by the session's is_new."""
    tenure = (day.k - users.signup_offset[user]).astype(np.int32)  # datediff(date, signup_date)
    orders_90d = np.where(is_new, users.new_orders_90d[user], users.old_orders_90d[user])
    sessions_7d = np.where(is_new, 1 + floor(users.new_sessions_draw[user] * (tenure + 1)), users.old_sessions_7d[user])
    return {
        "f_user_tenure_days": tenure,
        "f_user_orders_90d": orders_90d.astype(np.int32),
        "f_user_sessions_7d": sessions_7d.astype(np.int32),
        "f_user_avg_order_value": pa.array(users.avg_order_value[user], mask=~(orders_90d > 0)),
    }


def _draw_items(
    sc: Scenario, rng: HashRng, k: np.int32, s: np.ndarray, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Item ids laid out so that id % 10 == position - 1: no item twice in a request."""
    stride = SLOTS_PER_REQUEST
    new_slot = rng.uniform("new_slot", k, s, position) < sc.new_item_share
    old_item = floor(strict_pow(rng.uniform("old_item", k, s, position), 2.0) * (sc.base_items // stride)) * stride
    block = k - floor(rng.uniform("item_age", k, s, position) * NEW_WINDOW_DAYS) + (NEW_WINDOW_DAYS - 1)
    new_item = (
        sc.base_items
        + block * sc.new_items_per_day
        + floor(rng.uniform("new_item", k, s, position) * (sc.new_items_per_day // stride)) * stride
    )
    return np.where(new_slot, new_item, old_item) + (position - 1), new_slot


def _item_ctr_7d(rng: HashRng, items: _Items, k: np.int32, item_id: np.ndarray) -> np.ndarray:
    """round(0.08 * quality * (0.9 + 0.2 * uniform("ictr", item_id, k)), 5), drawn once per item."""
    ids, inverse = np.unique(item_id, return_inverse=True)
    value = 0.08 * items.quality[ids] * (0.9 + 0.2 * rng.uniform("ictr", ids, k))
    return spark_round(value, 5)[inverse]


def _experiment_ids(sc: Scenario, day: _Day, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(sc.experiment_id if day.in_experiment else None, pa.string()), n)


def _click_probability(
    sc: Scenario,
    day: _Day,
    is_new: np.ndarray,
    treatment: np.ndarray,
    pos_factor: np.ndarray,
    item_factor: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """generator._click_probability: (p_click, p_click_model)."""
    if day.promo:
        base = np.where(is_new, sc.promo_ctr_new, sc.promo_ctr_returning)
    else:
        base = np.where(is_new, sc.ctr_new, sc.ctr_returning)
    untreated = np.minimum(0.9, base * pos_factor * item_factor)
    lift = np.where(treatment, 1 + sc.treatment_ctr_lift, 1.0)
    trained = np.where(is_new, sc.ctr_new, sc.ctr_returning)
    believed = np.minimum(0.9, trained * pos_factor * item_factor)
    return np.minimum(0.9, untreated * lift), believed


def _model_score(
    rng: HashRng,
    request_ids: pa.Array,
    req: np.ndarray,
    position: np.ndarray,
    p_model: np.ndarray,
    treatment: np.ndarray,
) -> pa.Array:
    """generator._model_score: the logit of p_click_model plus noise, through a sigmoid."""
    with np.errstate(divide="ignore"):
        logit = np.log(p_model / (1.0 - p_model))
    noise_sd = np.where(treatment, 0.35, 0.6)
    u1 = _per_request_uniform(rng, "score:1", request_ids, req, position)
    u2 = _per_request_uniform(rng, "score:2", request_ids, req, position)
    noisy = logit + noise_sd * box_muller(u1, u2)
    score = spark_round(1.0 / (1.0 + np.exp(-noisy)), 6)
    return pa.array(score, mask=~(p_model > 0))  # Spark's log(x <= 0) is null


def _per_request_uniform(
    rng: HashRng, salt: str, request_ids: pa.Array, req: np.ndarray, *cols: np.ndarray
) -> np.ndarray:
    """uniform(salt, request_id, *cols): the string is hashed once per request, not per row."""
    if len(req) < len(request_ids):  # e.g. the few clicked rows: hash only their requests
        needed, req = np.unique(req, return_inverse=True)
        request_ids = request_ids.take(pa.array(needed))
    return to_uniform(chain_hash(chain_hash(rng.start(salt), request_ids)[req], *cols))


def _funnel(
    sc: Scenario, world: _World, imp: _Impressions, sess: _Sessions, request_ids: pa.Array
) -> dict[str, pa.Table]:
    """generator._funnel: clicks, then add-to-carts of clicks, then orders of carts."""
    rng = world.rng

    def draw(salt: str, rows: np.ndarray) -> np.ndarray:  # uniform(salt, request_id, item_id)
        return _per_request_uniform(rng, salt, request_ids, imp.req[rows], imp.item_id[rows])

    def keys(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {"user_id": sess.user_id[imp.sess[rows]], "item_id": imp.item_id[rows]}

    rows = np.flatnonzero(draw("click", np.arange(len(imp.req))) < imp.p_click)
    click_us = imp.columns["impression_ts"][rows] + (5 + floor(draw("cts", rows) * 115)) * _US
    clicks = {"request_id": request_ids.take(pa.array(imp.req[rows])), "click_ts": click_us, **keys(rows)}

    is_new = sess.is_new[imp.sess[rows]]
    carted = draw("cart", rows) < np.where(is_new, sc.cart_rate_new, sc.cart_rate_returning)
    rows, click_us = rows[carted], click_us[carted]
    quantity = (1 + floor(strict_pow(draw("qty", rows), 3.0) * 3)).astype(np.int32)
    event_us = click_us + (30 + floor(draw("ets", rows) * 570)) * _US
    carts = {"cart_event_id": _event_ids(request_ids, imp, rows, "c"), "quantity": quantity, "event_ts": event_us,
             **keys(rows)}

    is_new, treated = sess.is_new[imp.sess[rows]], sess.treatment[imp.sess[rows]]
    order_rate = np.where(is_new, sc.order_rate_new, sc.order_rate_returning) * np.where(
        treated, 1 + sc.treatment_order_lift, 1.0
    )
    ordered = draw("order", rows) < order_rate
    rows, quantity, event_us = rows[ordered], quantity[ordered], event_us[ordered]
    orders = {"order_id": _event_ids(request_ids, imp, rows, "o"), "quantity": quantity,
              "price": imp.columns["f_item_price"][rows],
              "order_ts": event_us + (60 + floor(draw("ots", rows) * 1740)) * _US, **keys(rows)}
    return {"clicks": _table("clicks", clicks), "add_to_cart": _table("add_to_cart", carts),
            "orders": _table("orders", orders)}


def _event_ids(request_ids: pa.Array, imp: _Impressions, rows: np.ndarray, suffix: str) -> pa.Array:
    """concat_ws("-", request_id, item_id, suffix)."""
    rid = request_ids.take(pa.array(imp.req[rows]))
    return pc.binary_join_element_wise(rid, pa.array(imp.item_id[rows]).cast(pa.string()), suffix, "-")


# ---------------------------------------------------------------------------------------------
# Arrow output
# ---------------------------------------------------------------------------------------------

_ARROW_TYPES = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
# The tables of the Spark reference generator (tests/reference/), and the serving log after them.
REFERENCE_TABLES = ("users", "items", "sessions", "impressions", "clicks", "add_to_cart", "orders")
TABLES = (*REFERENCE_TABLES, "requests")


@functools.cache
def arrow_schema(name: str) -> pa.Schema:
    """The contract columns of an input table (without ds) as an Arrow schema."""
    return pa.schema([(col, _ARROW_TYPES[sql_type]) for col, sql_type in INPUT_TABLES[name].columns])


def _table(name: str, columns: dict[str, object]) -> pa.Table:
    schema = arrow_schema(name)
    arrays = [_to_arrow(columns[field.name], field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_arrow(values: object, type_: pa.DataType) -> pa.Array:
    if isinstance(values, Categorical):
        values = values.to_arrow()
    if isinstance(values, pa.Array):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(values, type_)  # int64 microseconds / int32 days convert to timestamps / dates


def _users_snapshot(sc: Scenario, users: _Users, day: _Day) -> pa.Table:
    """Users signed up on or before the day: a prefix, since offsets grow with user_id."""
    n = int(np.searchsorted(users.signup_offset[sc.base_users :], day.k, side="right")) + sc.base_users
    return _table("users", {
        "user_id": users.user_id[:n],
        "signup_date": (users.signup_offset[:n] + (day.epoch_day - day.k)).astype(np.int32),
        "region": users.region.take(slice(0, n)),
        "acquisition_channel": users.channel.take(slice(0, n)),
    })


def _items_snapshot(sc: Scenario, items: _Items, day: _Day) -> pa.Table:
    """Items listed on or before the day: base items and the first k + 7 daily blocks."""
    n = min(len(items), sc.base_items + (int(day.k) + NEW_WINDOW_DAYS) * sc.new_items_per_day)
    return _table("items", {
        "item_id": np.arange(n, dtype=np.int64),
        "category": items.category.take(slice(0, n)),
        "price": items.price[:n],
        "first_listed_date": (items.listed_offset[:n] + (day.epoch_day - day.k)).astype(np.int32),
    })


def _sessions_table(sc: Scenario, day: _Day, sess: _Sessions) -> pa.Table:
    return _table("sessions", {
        "session_id": _session_ids(day, sess.s),
        "user_id": sess.user_id,
        "experiment_id": _experiment_ids(sc, day, len(sess.s)),
        "variant": Categorical(sess.treatment.astype(np.int64), ("control", "treatment")),
        "platform": sess.platform,
        "session_start_ts": sess.start_us,
    })


def _chunk(sc: Scenario, world: _World, day: _Day, s: np.ndarray) -> dict[str, pa.Table]:
    sess = _sessions(sc, world, day, s)
    imp, request_ids = _impressions(sc, world, day, sess)
    return {
        "sessions": _sessions_table(sc, day, sess),
        "impressions": _table("impressions", imp.columns),
        **_funnel(sc, world, imp, sess, request_ids),
        "requests": _requests(sc, world, day, sess, imp, request_ids),
    }


RETRY_MS = 80.0  # a retry costs its timeout


def _client_hash(rng: HashRng, user_id: np.ndarray) -> pa.Array:
    """A client's source id: 14 hex digits of a hash of its user (one device per user here)."""
    h = (chain_hash(rng.start("source"), user_id.astype(np.int64)) >> np.uint64(8)).astype(np.int64)
    return pa.array(np.char.mod("%014x", h), pa.string())


def _requests(sc: Scenario, world: _World, day: _Day, sess: _Sessions, imp: _Impressions,
              request_ids: pa.Array) -> pa.Table:
    """The serving log of one chunk: a served request per served session (the page its
    impressions came from) and, for ``error_share`` of all sessions, one failed request before
    it. Latency: log-normal around the arm's median, ``slow_share`` of requests 3x..8x slower,
    plus ``RETRY_MS`` per retry."""
    rng, k = world.rng, day.k
    served = np.flatnonzero(sess.served)
    s = sess.s[served]
    treatment = sess.treatment[served]
    median = np.where(treatment, sc.latency_median_ms_treatment, sc.latency_median_ms_control)
    slow = rng.uniform("slow", k, s) < sc.slow_share
    factor = np.where(slow, 3 + 5 * rng.uniform("slow_x", k, s), 1.0)
    u = rng.uniform("retry", k, s)
    retries = np.where(u < sc.retry_share * 0.15, 2, np.where(u < sc.retry_share, 1, 0)).astype(np.int32)
    latency = np.round(median * np.exp(sc.latency_sigma * rng.normal("latency", k, s)) * factor + retries * RETRY_MS, 3)
    failed = np.flatnonzero(rng.uniform("error", k, sess.s) < sc.error_share)
    f_treat = sess.treatment[failed]
    unavailable = rng.uniform("error_kind", k, sess.s[failed]) < 0.7  # 503 after two timed-out retries, else 500
    columns = {
        "request_id": pa.concat_arrays([request_ids, _session_ids(day, sess.s[failed], "e")]),
        "session_id": pa.concat_arrays([_session_ids(day, s), _session_ids(day, sess.s[failed])]),
        "user_id": np.concatenate([sess.user_id[served], sess.user_id[failed]]),
        "model_name": pa.repeat(pa.scalar(sc.model_name), len(served) + len(failed)),
        "model_version": Categorical(np.concatenate([treatment, f_treat]).astype(np.int64),
                                     (sc.control_version, sc.treatment_version)),
        "variant": Categorical(np.concatenate([treatment, f_treat]).astype(np.int64), ("control", "treatment")),
        "source": pa.concat_arrays([_client_hash(rng, sess.user_id[served]), _client_hash(rng, sess.user_id[failed])]),
        "request_ts": np.concatenate([sess.start_us[served] + _US, sess.start_us[failed]]),
        "latency_ms": np.concatenate([latency, np.where(unavailable, 3 * 1000.0, 12.5)]),
        "status": np.concatenate([np.full(len(served), 200), np.where(unavailable, 503, 500)]).astype(np.int32),
        "retries": np.concatenate([retries, np.where(unavailable, 2, 0)]).astype(np.int32),
        "n_items": np.concatenate([np.bincount(imp.req, minlength=len(served)),
                                   np.zeros(len(failed), np.int64)]).astype(np.int32),
    }
    return _table("requests", columns)


CRAWLER_S0 = 1 << 40  # the crawler's pseudo session indexes: far from any real session index


def _crawler(sc: Scenario, world: _World, day: _Day) -> dict[str, pa.Table]:
    """The crawler's traffic on its day: ``crawler_sessions`` sessions of logged-in returning
    accounts from one source (``CRAWLER_SOURCE``), from 02:00, a page every half second, no
    click; served by the control model outside the experiment (no experiment cookie)."""
    rng, k = world.rng, day.k
    n = sc.crawler_requests
    per = -(-n // sc.crawler_sessions)
    j = np.arange(n, dtype=np.int64)
    b, i = j // per, j % per
    accounts = floor(rng.uniform("crawler_account", k, np.arange(sc.crawler_sessions, dtype=np.int64))
                     * sc.base_users)
    user_id = accounts[b]
    start_us = (day.epoch_day * 86_400 + 2 * 3600 + b * 900) * _US + i * (_US // 2)
    zeros = np.zeros(n, bool)
    sess = _Sessions(s=CRAWLER_S0 + j, is_new=zeros, served=~zeros, user_id=user_id,
                     user_row=_lookup(world.users.row_of, user_id), treatment=zeros,
                     hour=((start_us // _US) % 86_400 // 3600).astype(np.int32), start_us=start_us,
                     platform=Categorical(np.zeros(n, np.int64), ("web",)),
                     traffic_source=Categorical(np.zeros(n, np.int64), ("organic",)))
    imp, _ = _impressions(sc, world, day, sess)
    session_ids = pc.binary_join_element_wise(f"{day.ds}-bot", pa.array(b).cast(pa.string()), "-")
    request_ids = pc.binary_join_element_wise(session_ids, "r", pa.array(i).cast(pa.string()), "-")
    columns = {**imp.columns, "request_id": request_ids.take(pa.array(imp.req)),
               "experiment_id": pa.nulls(len(imp.req), pa.string())}
    first = np.flatnonzero(i == 0)
    latency = np.round(25.0 * np.exp(0.2 * rng.normal("crawler_latency", k, j)), 3)
    return {
        "sessions": _table("sessions", {
            "session_id": session_ids.take(pa.array(first)), "user_id": user_id[first],
            "experiment_id": pa.nulls(len(first), pa.string()),
            "variant": pa.repeat(pa.scalar("control"), len(first)), "platform": pa.repeat(pa.scalar("web"), len(first)),
            "session_start_ts": start_us[first]}),
        "impressions": _table("impressions", columns),
        "clicks": arrow_schema("clicks").empty_table(),
        "add_to_cart": arrow_schema("add_to_cart").empty_table(),
        "orders": arrow_schema("orders").empty_table(),
        "requests": _table("requests", {
            "request_id": request_ids, "session_id": session_ids, "user_id": user_id,
            "model_name": pa.repeat(pa.scalar(sc.model_name), n),
            "model_version": pa.repeat(pa.scalar(sc.control_version), n),
            "variant": pa.repeat(pa.scalar("control"), n), "source": pa.repeat(pa.scalar(CRAWLER_SOURCE), n),
            "request_ts": start_us, "latency_ms": latency, "status": np.full(n, 200, np.int32),
            "retries": np.zeros(n, np.int32),
            "n_items": np.bincount(imp.req, minlength=n).astype(np.int32)}),
    }


def generate_day(sc: Scenario, k: int, *, chunk_sessions: int | None = None) -> Iterator[dict[str, pa.Table]]:
    """The tables of day ``k`` (date sc.start + k days), identical to ``generator.generate``'s rows.

    Yields dicts table name -> pa.Table with the contract columns minus ``ds``. The users and
    items snapshots come in the first chunk (later chunks hold them empty); sessions and the
    rows derived from them come in chunks of at most ``chunk_sessions`` session indexes.
    """
    if not 0 <= k < sc.days:
        raise ValueError(f"day index {k} outside the scenario's {sc.days} days")
    if chunk_sessions is not None and chunk_sessions < 1:
        raise ValueError("chunk_sessions must be >= 1")
    world = _world(sc)
    day = _Day.of(sc, k)
    n_sessions = _session_count(sc, day)
    step = chunk_sessions or max(n_sessions, 1)
    for first in range(0, max(n_sessions, 1), step):
        s = np.arange(first, min(first + step, n_sessions), dtype=np.int64)
        chunk = _chunk(sc, world, day, s)
        if first == 0:
            chunk["users"] = _users_snapshot(sc, world.users, day)
            chunk["items"] = _items_snapshot(sc, world.items, day)
        else:
            chunk["users"] = arrow_schema("users").empty_table()
            chunk["items"] = arrow_schema("items").empty_table()
        yield {name: chunk[name] for name in TABLES}
    if sc.crawler_requests and k == sc.crawler_day:
        chunk = _crawler(sc, world, day)
        chunk["users"] = arrow_schema("users").empty_table()
        chunk["items"] = arrow_schema("items").empty_table()
        yield {name: chunk[name] for name in TABLES}
