"""Nearest-neighbour outcome features: how did this prompt do on questions like this one?

Kept because measured (docs/core.md): on the real logs a kernel-weighted average of the
logged success of a prompt over the k most similar training queries is the single most
useful signal besides the raw embeddings, on both protocols.

For a query q and prompt p the memory returns four numbers:

- ``rate``: Σ_j w_j R[j, p'] / Σ_j w_j over the k nearest training queries j, with
  w_j = exp((cos(q, q_j) − 1) / T) and p' the memorised prompt nearest to p (itself when p
  was in training);
- ``rate − mean over prompts`` of the same (the prompt-specific part, which is what ranks);
- the best cosine similarity to any memorised query (how close the evidence is);
- cos(p, p') (1 for a training prompt; lower for an unseen candidate mapped to a seen one).

During training a query never sees itself (``exclude``), so the features are honest
out-of-sample estimates rather than copies of the label.
"""

from __future__ import annotations

import numpy as np

N_FEATURES = 4


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so dot products are the cosines the kernel is defined on
    (the bundled embedders already normalise; raw vectors from elsewhere may not)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class NeighbourMemory:
    def __init__(self, query_emb: np.ndarray, prompt_emb: np.ndarray, rates: np.ndarray, k: int = 100,
                 temperature: float = 0.05):
        self.query_emb = _unit(query_emb)  # (n_mem, d)
        self.prompt_emb = _unit(prompt_emb)  # (n_mp, d)
        self.rates = np.asarray(rates, dtype=np.float32)  # (n_mem, n_mp); NaN where not logged
        self.k = int(min(k, len(self.query_emb)))
        self.temperature = float(temperature)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"query_emb": self.query_emb, "prompt_emb": self.prompt_emb, "rates": self.rates,
                "k": np.array(self.k), "temperature": np.array(self.temperature)}

    @classmethod
    def from_arrays(cls, a) -> NeighbourMemory:
        return cls(a["query_emb"], a["prompt_emb"], a["rates"], int(a["k"]), float(a["temperature"]))

    def _neighbour_rates(self, query_emb: np.ndarray, exclude: np.ndarray | None, block: int = 2048):
        """-> (n_q, n_mp) kernel-weighted success rates and (n_q,) best similarity."""
        n_q = len(query_emb)
        out = np.empty((n_q, self.rates.shape[1]), dtype=np.float32)
        best = np.empty(n_q, dtype=np.float32)
        logged = ~np.isnan(self.rates)
        filled = np.where(logged, self.rates, 0.0).astype(np.float32)
        n_logged = logged.sum(axis=0)
        prior = filled.sum(axis=0) / np.maximum(n_logged, 1)  # a query with no usable neighbour: the global rate
        for s in range(0, n_q, block):
            sims = _unit(query_emb[s : s + block]) @ self.query_emb.T  # (b, n_mem)
            if exclude is not None:
                sims[np.arange(len(sims)), exclude[s : s + block]] = -np.inf
            k = min(self.k, sims.shape[1] - (exclude is not None))
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (b, k)
            top = np.take_along_axis(sims, idx, axis=1)
            w = np.exp((top - 1.0) / self.temperature)  # (b, k)
            num = np.einsum("bk,bkp->bp", w, filled[idx])
            den = np.einsum("bk,bkp->bp", w, logged[idx].astype(np.float32))
            out[s : s + block] = np.where(den > 0, num / np.maximum(den, 1e-30), prior)
            best[s : s + block] = top.max(axis=1)
        return out, best

    def _prompt_map(self, prompt_emb: np.ndarray):
        sims = _unit(prompt_emb) @ self.prompt_emb.T  # (n_p, n_mp)
        return sims.argmax(axis=1), sims.max(axis=1)

    def grid(self, query_emb: np.ndarray, prompt_emb: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Features for every (query, prompt): -> (n_q, n_p, 4)."""
        rates, best = self._neighbour_rates(query_emb, exclude)
        mapped, p_sim = self._prompt_map(prompt_emb)
        r = rates[:, mapped]  # (n_q, n_p)
        centred = r - rates.mean(axis=1, keepdims=True)
        n_q, n_p = r.shape
        return np.stack([r, centred, np.repeat(best[:, None], n_p, axis=1),
                         np.repeat(p_sim[None, :], n_q, axis=0)], axis=2).astype(np.float32)

    def pairs(self, query_emb: np.ndarray, prompt_emb: np.ndarray) -> np.ndarray:
        """Features for row-aligned (query, prompt) pairs: -> (n, 4)."""
        rates, best = self._neighbour_rates(query_emb, None)
        mapped, p_sim = self._prompt_map(prompt_emb)
        r = rates[np.arange(len(rates)), mapped]
        return np.column_stack([r, r - rates.mean(axis=1), best, p_sim]).astype(np.float32)

    def rows(self, query_ids: np.ndarray, prompt_ids: np.ndarray, exclude_self: bool = True) -> np.ndarray:
        """Features for training rows whose query/prompt are memory entries: -> (n_rows, 4)."""
        uq = np.unique(query_ids)
        g = self.grid(self.query_emb[uq], self.prompt_emb, exclude=uq if exclude_self else None)
        pos = np.searchsorted(uq, query_ids)
        return g[pos, prompt_ids]
