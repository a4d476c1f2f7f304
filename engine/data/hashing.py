"""Image hashes for duplicate search: a perceptual hash per image, and near-duplicate pairs found without
comparing every image with every other one.

- :func:`perceptual_hash` is ImageHash's DCT hash (``imagehash.phash``: 64 bits, written as 16 hex
  digits), computed on the small thumbnail the scan decodes anyway. The same steps as ImageHash
  (grayscale, 32x32 Lanczos, 2-D DCT-II, the 8x8 lowest frequencies against their median) with the
  DCT as two small matrix products: the result equals ``str(imagehash.phash(img))`` and costs a
  twentieth of it, which matters when the decode of a thumbnail takes about a millisecond.
- :func:`near_duplicate_pairs` finds every pair of hashes within a Hamming distance ``d`` by the
  pigeonhole principle: cut the 64 bits into ``d + 1`` blocks; two hashes that differ in at most
  ``d`` bits agree exactly on at least one block. So only hashes that share a block value become
  candidates (a sort per block, no Python loop), and a vectorized popcount keeps the true pairs. On
  20,000 distinct photos that is a few thousand candidates instead of 200 million comparisons.
- :func:`connected_groups` merges pairs into groups (connected components).
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 64
# Above this many candidate pairs, the exact chunked comparison is cheaper than the block index
# (hashes of near-uniform images pile up in a few block values).
_MAX_CANDIDATES = 2_000_000
_BRUTE_FORCE_CHUNK = 256


def _dct_rows(size: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the unnormalized DCT-II matrix (scipy.fftpack.dct's, type 2)."""
    k = np.arange(keep)[:, None]
    n = np.arange(size)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * size))


_PHASH_SIZE, _PHASH_KEEP = 32, 8
_DCT = _dct_rows(_PHASH_SIZE, _PHASH_KEEP)


def perceptual_hash(rgb: np.ndarray) -> str:
    """ImageHash's ``phash`` (hash_size 8) of an RGB uint8 array (H, W, 3), as 16 hex digits."""
    from PIL import Image

    gray = Image.fromarray(rgb).convert("L").resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS)
    low = (_DCT @ np.asarray(gray, dtype=np.float64) @ _DCT.T).ravel()
    ordered = np.sort(low)
    median = (ordered[31] + ordered[32]) / 2  # np.median's value, without its overhead on 64 numbers
    return np.packbits(low > median).tobytes().hex()


def hashes_to_uint64(hexes) -> np.ndarray:
    """16-hex-digit hashes -> uint64 array (shape (n,)), parsed in one go. Missing values are not allowed."""
    text = "".join(hexes)
    if len(text) % 16:
        raise ValueError("every hash must be 16 hex digits")
    return np.frombuffer(bytes.fromhex(text), dtype=">u8").astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between uint64 arrays (broadcast)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _pairs_within_equal_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j), i != j, of positions whose ``keys`` are equal (each pair once), vectorized."""
    n = len(keys)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group_end = np.repeat(starts + sizes, sizes)
    later = group_end - np.arange(n) - 1  # how many later members each sorted position pairs with
    total = int(later.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    left = np.repeat(np.arange(n), later)
    offset = np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    right = left + 1 + offset
    return order[left].astype(np.int64), order[right].astype(np.int64)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # Sort-based on purpose: numpy 2.4's hash-based np.unique is slow on millions of int64 codes.
    s = np.sort(values)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def _candidate_count(keys: np.ndarray) -> int:
    s = np.sort(keys)
    counts = np.diff(np.r_[np.flatnonzero(np.r_[True, s[1:] != s[:-1]]), len(s)])
    return int((counts * (counts - 1) // 2).sum())


def _brute_force_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact search, one block of rows against the later columns at a time (the upper triangle only)."""
    lefts, rights, dists = [], [], []
    n = len(hashes)
    for start in range(0, n, _BRUTE_FORCE_CHUNK):
        stop = min(n, start + _BRUTE_FORCE_CHUNK)
        d = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, start:])  # uint8 (rows, n - start)
        i, j = np.nonzero(d <= max_distance)
        upper = j > i  # column offset j is row start + j; row i is start + i
        i, j = i[upper], j[upper]
        lefts.append(start + i)
        rights.append(start + j)
        dists.append(d[i, j])
    return (np.concatenate(lefts).astype(np.int64), np.concatenate(rights).astype(np.int64),
            np.concatenate(dists).astype(np.int64))


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of positions whose 64-bit hashes differ in at most ``max_distance`` bits.

    ``hashes``: uint64 array (n,). Returns ``(i, j, distance)`` int64 arrays with ``i < j``, each pair once,
    sorted by (i, j). Identical hashes are pairs at distance 0 (pass distinct hashes when many repeat).
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    empty = (np.empty(0, np.int64),) * 3
    if n < 2 or max_distance < 0:
        return empty
    max_distance = min(int(max_distance), HASH_BITS)
    blocks = max_distance + 1
    if HASH_BITS // blocks < 6:  # blocks of a few bits match almost everything: compare directly
        i, j, d = _brute_force_pairs(hashes, max_distance)
    else:
        edges = np.linspace(0, HASH_BITS, blocks + 1).round().astype(int)
        keys = [(hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
                for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        if sum(_candidate_count(k) for k in keys) > _MAX_CANDIDATES:
            i, j, d = _brute_force_pairs(hashes, max_distance)
        else:
            found = [_pairs_within_equal_keys(k) for k in keys]
            i = np.concatenate([f[0] for f in found])
            j = np.concatenate([f[1] for f in found])
            i, j = np.minimum(i, j), np.maximum(i, j)
            code = _sorted_unique(i * n + j)  # the same pair may share several blocks
            i, j = code // n, code % n
            d = hamming(hashes[i], hashes[j])
            keep = d <= max_distance
            i, j, d = i[keep], j[keep], d[keep]
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64), d[order].astype(np.int64)


def connected_groups(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Group id (0..groups-1, numbered by first appearance) of each of ``n`` items, given the edges
    ``left[k] -- right[k]``: connected components by hooking roots onto smaller roots and pointer jumping,
    vectorized (a few rounds even for long chains)."""
    parent = np.arange(n, dtype=np.int64)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    while len(left):
        a, b = parent[left], parent[right]  # roots: parent is flat at the top of each round
        differ = a != b
        if not differ.any():
            break
        left, right, a, b = left[differ], right[differ], a[differ], b[differ]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))  # hook the larger root onto the smaller
        while True:  # pointer jumping until every item points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return _numbered_by_first_appearance(parent)


def _numbered_by_first_appearance(values: np.ndarray) -> np.ndarray:
    _, first_seen, codes = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(first_seen), dtype=np.int64)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(len(first_seen))
    return rank[codes]
