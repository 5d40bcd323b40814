"""Exact nearest-neighbour distances between 3-D point sets, numpy only (no scipy).

A uniform voxel grid, refined coarse-ward: with cell size h, every reference point within h of a
query lies in the 3×3×3 cells around it, so a query whose best candidate there is ≤ h away is
exact. Unresolved queries (points far from the other cloud, e.g. flying pixels) go to the next
pass with a 2× larger cell; once a cell spans the whole cloud the pass is a brute-force search.
Few candidates per query: evaluated pair by pair (vectorised); many: per query cell as dense
blocks (all queries of a cell share their 27 candidate cells). Distances are float64, exact up
to rounding (~1e-7 m for clouds spanning tens of metres).
"""
from __future__ import annotations

import numpy as np

_OFFSETS = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], np.int64)


def _brute_force(queries: np.ndarray, refs: np.ndarray, chunk_pairs: int) -> np.ndarray:
    out = np.empty(len(queries))
    rr = np.einsum('ij,ij->i', refs, refs)
    step = max(1, chunk_pairs // max(1, len(refs)))
    for s in range(0, len(queries), step):
        q = queries[s:s + step]
        d2 = np.einsum('ij,ij->i', q, q)[:, None] + rr[None, :] - 2.0 * (q @ refs.T)
        out[s:s + step] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _typical_spacing(refs: np.ndarray, rng: np.random.Generator) -> float:
    """Median nearest-neighbour spacing of a sample of the reference points."""
    sample = refs[rng.choice(len(refs), size=min(64, len(refs)), replace=False)]
    d2 = (sample * sample).sum(1)[:, None] + (refs * refs).sum(1)[None, :] - 2.0 * (sample @ refs.T)
    d2[d2 <= 1e-24] = np.inf  # the sample point itself (and exact duplicates)
    nn = np.sqrt(d2.min(axis=1))
    nn = nn[np.isfinite(nn)]
    return float(np.median(nn)) if nn.size else 0.0


_BLOCK_MODE_PAIRS_PER_QUERY = 256


def _best_by_pairs(q, sorted_refs, cnt, st, per_query, max_pairs):
    """Squared distance to the best candidate, one (query, candidate) pair at a time (few candidates)."""
    best = np.full(len(q), np.inf)
    csum = np.cumsum(per_query)
    begin = 0
    while begin < len(q):  # chunks of queries with at most ~max_pairs candidate pairs
        done_before = int(csum[begin - 1]) if begin else 0
        end = max(begin + 1, int(np.searchsorted(csum, done_before + max_pairs, side='right')))
        c = cnt[begin:end].ravel()
        total = int(c.sum())
        if total:
            ref_idx = np.repeat(st[begin:end].ravel(), c) + (np.arange(total) - np.repeat(np.cumsum(c) - c, c))
            q_idx = np.repeat(np.arange(begin, end), per_query[begin:end])
            diff = sorted_refs[ref_idx] - q[q_idx]
            d2 = np.einsum('ij,ij->i', diff, diff)
            pq = per_query[begin:end]
            has = pq > 0
            best[begin:end][has] = np.minimum.reduceat(d2, (np.cumsum(pq) - pq)[has])
        begin = end
    return best


def _best_by_cell_blocks(q, qcell, dims, sorted_refs, keys, starts, counts):
    """Squared distance to the best candidate, one query cell at a time: all queries of a cell share
    the same 27 candidate cells, so each block is a dense distance matrix (many candidates)."""
    best = np.full(len(q), np.inf)
    qkey = (qcell[:, 0] * dims + qcell[:, 1]) * dims + qcell[:, 2]
    order = np.argsort(qkey, kind='stable')
    cell_keys, cell_starts = np.unique(qkey[order], return_index=True)
    cell_ends = np.append(cell_starts[1:], len(order))
    offsets = (_OFFSETS[:, 0] * dims + _OFFSETS[:, 1]) * dims + _OFFSETS[:, 2]
    rr = np.einsum('ij,ij->i', sorted_refs, sorted_refs)
    for key, s, e in zip(cell_keys, cell_starts, cell_ends):
        nkey = key + offsets
        pos = np.clip(np.searchsorted(keys, nkey), 0, len(keys) - 1)
        hit = keys[pos] == nkey
        if not hit.any():
            continue
        cand = np.concatenate([np.arange(starts[i], starts[i] + counts[i]) for i in pos[hit]])
        members = order[s:e]
        qb = q[members]
        d2 = np.einsum('ij,ij->i', qb, qb)[:, None] + rr[cand][None, :] - 2.0 * (qb @ sorted_refs[cand].T)
        best[members] = np.maximum(d2.min(axis=1), 0.0)
    return best


def nearest_distances(queries: np.ndarray, refs: np.ndarray, max_pairs: int = 4_000_000) -> np.ndarray:
    """For each query point (N, 3), the Euclidean distance to the nearest reference point (M, 3)."""
    queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
    refs = np.asarray(refs, dtype=np.float64).reshape(-1, 3)
    if not (np.isfinite(queries).all() and np.isfinite(refs).all()):
        raise ValueError('nearest_distances needs finite points')
    out = np.full(len(queries), np.inf)
    if len(queries) == 0 or len(refs) == 0:
        return out
    center = refs.mean(axis=0)  # small coordinates keep |q|² + |r|² − 2q·r accurate
    queries, refs = queries - center, refs - center
    if len(queries) * len(refs) <= max_pairs:
        return _brute_force(queries, refs, max_pairs)
    lo = np.minimum(queries.min(0), refs.min(0))
    extent = float((np.maximum(queries.max(0), refs.max(0)) - lo).max())
    cell = max(2.0 * _typical_spacing(refs, np.random.default_rng(0)), extent * 1e-6, 1e-9)
    todo = np.arange(len(queries))
    while todo.size:
        if cell >= extent or todo.size * len(refs) <= max_pairs:
            out[todo] = _brute_force(queries[todo], refs, max_pairs)
            break
        dims = np.int64(np.floor(extent / cell)) + 3
        if dims ** 3 >= 2 ** 62:
            raise ValueError('point cloud extent too large for the grid')
        rcell = np.floor((refs - lo) / cell).astype(np.int64) + 1
        rkey = (rcell[:, 0] * dims + rcell[:, 1]) * dims + rcell[:, 2]
        order = np.argsort(rkey, kind='stable')
        sorted_refs = refs[order]
        keys, starts, counts = np.unique(rkey[order], return_index=True, return_counts=True)
        qcell = np.floor((queries[todo] - lo) / cell).astype(np.int64) + 1
        ncell = qcell[:, None, :] + _OFFSETS[None, :, :]                                  # (n, 27, 3)
        nkey = (ncell[..., 0] * dims + ncell[..., 1]) * dims + ncell[..., 2]
        pos = np.clip(np.searchsorted(keys, nkey), 0, len(keys) - 1)
        found = keys[pos] == nkey
        cnt = np.where(found, counts[pos], 0)                                            # (n, 27)
        st = starts[pos]
        per_query = cnt.sum(axis=1)
        if per_query.sum() > _BLOCK_MODE_PAIRS_PER_QUERY * todo.size:
            best = _best_by_cell_blocks(queries[todo], qcell, dims, sorted_refs, keys, starts, counts)
        else:
            best = _best_by_pairs(queries[todo], sorted_refs, cnt, st, per_query, max_pairs)
        resolved = best <= cell * cell
        out[todo[resolved]] = np.sqrt(best[resolved])
        todo = todo[~resolved]
        cell *= 2.0
    return out


__all__ = ['nearest_distances']
