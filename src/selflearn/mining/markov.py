"""Absorbing Markov chain over utterance patterns.

Every organic turn is a step of a chain: from its pattern it moves to the pattern of the turn
that reformulated it (when it failed and the user tried again), or is absorbed in *success*
(it worked) or *failure* (it failed and the user gave up). Pooled over users, the counts give a
transition matrix over transient states (patterns) ``Q`` and absorption probabilities ``R``
(columns: success, failure). The probability that a session reaching pattern ``i`` ends in
success is ``B = (I - Q)^-1 R`` -- solved per connected component of the transition graph,
sparsely, so a million turns cost what their few connected patterns cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

SUCCESS = "__success__"
FAILURE = "__failure__"
ABSORBING = (SUCCESS, FAILURE)

DENSE_LIMIT = 256
"""Components up to this many states are solved densely (faster than sparse LU when small)."""


@dataclass(frozen=True)
class Chain:
    """The fitted chain: one row per transient state."""

    states: list[str]
    """Pattern of each state."""
    turns: np.ndarray
    """Turns that left each state (the row total of the counts)."""
    direct_success: np.ndarray
    """Share of a state's turns absorbed in success right there (the pattern worked)."""
    absorb_success: np.ndarray
    """``B[:, success]``: probability that a session reaching the state ends in success."""
    components: int
    """Connected components with at least one transition."""
    largest_component: int
    """States in the largest component."""

    def index(self) -> dict[str, int]:
        """State pattern -> row."""
        return {s: i for i, s in enumerate(self.states)}


def absorbing_chain(
    edges: Sequence[tuple[str, str, int]],
) -> Chain:
    """Build and solve the chain from ``(source pattern, destination, count)`` rows, where the
    destination is another pattern, :data:`SUCCESS` or :data:`FAILURE`.

    A destination pattern that never leaves (no row of its own: it was only ever said in turns
    that were rewritten, whose outcomes are kept out of the chain) is a *sink* of unknown
    outcome; it is absorbed in failure with 0 turns of evidence, so it is never chosen as a
    target and counts against, not for, the patterns that lead to it.
    """
    names = sorted({s for s, _, _ in edges} | {d for _, d, _ in edges if d not in ABSORBING})
    index = {s: i for i, s in enumerate(names)}
    n = len(names)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    succ = np.zeros(n)
    fail = np.zeros(n)
    total = np.zeros(n)
    for src, dst, count in edges:
        i = index[src]
        total[i] += count
        if dst == SUCCESS:
            succ[i] += count
        elif dst == FAILURE:
            fail[i] += count
        else:
            rows.append(i)
            cols.append(index[dst])
            vals.append(float(count))
    sink = total == 0
    fail[sink] = 1.0
    total[sink] = 1.0  # for the division below; reported as 0 turns
    q = sp.csr_matrix((np.array(vals) / total[rows], (rows, cols)), shape=(n, n))
    r_succ = succ / total
    b = r_succ.copy()  # states without transitions: absorbed where they are
    has_edge = np.zeros(n, dtype=bool)
    has_edge[rows] = True
    has_edge[cols] = True
    n_comp, labels = csgraph.connected_components(q, directed=True, connection="weak")
    sizes = np.bincount(labels, minlength=n_comp)
    active = np.unique(labels[has_edge])
    # Permute the active states so that every component is one contiguous block of (I - Q);
    # each block is then solved on its own (densely when small, by sparse LU when large).
    members = np.flatnonzero(np.isin(labels, active))
    members = members[np.argsort(labels[members], kind="stable")]
    a = (sp.identity(len(members), format="csr") - q[members][:, members]).tocsr()
    rhs = r_succ[members]
    x = np.empty(len(members))
    bounds = np.concatenate([[0], np.cumsum(sizes[active])])
    for lo, hi in itertools.pairwise(bounds.tolist()):
        block = a[lo:hi, lo:hi]
        if hi - lo <= DENSE_LIMIT:
            x[lo:hi] = np.linalg.solve(block.toarray(), rhs[lo:hi])
        else:
            x[lo:hi] = spla.spsolve(block.tocsc(), rhs[lo:hi])
    b[members] = x
    return Chain(
        states=names,
        turns=np.where(sink, 0, total).astype(np.int64),
        direct_success=r_succ,
        absorb_success=np.clip(b, 0.0, 1.0),
        components=len(active),
        largest_component=int(sizes[active].max()) if len(active) else 0,
    )
