"""``PromptRewardModel``: r̂(q, p) = P(correct | e(q), e(p)), trained with cross-entropy.

scikit-learn shaped: parameters in the constructor, ``fit`` returns self, fitted
attributes end in ``_``. It takes embeddings (never texts), so the same model scores
registered prompts and unseen prompt texts alike.

Fitting holds out a random 10% of *queries* (all their rows together, so no query is on
both sides), early-stops the backend on them, keeps their predictions for calibrating the
selection policy, then refits on all rows for the chosen number of rounds.
"""

from __future__ import annotations

import time

import numpy as np

from oirl.reward.artefact import load_artefact, save_artefact
from oirl.reward.backends import make_backend
from oirl.reward.features import check_feature_set, grid_features, pair_features, uses_neighbours
from oirl.reward.neighbours import NeighbourMemory

MEMORY_FILE = "memory.npz"


def weighted_log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum())


class PromptRewardModel:
    """Featurisation + one backend (``lightgbm`` default, ``xgboost``, ``mlp``).

    Parameters
    ----------
    backend: backend name.
    params: backend parameters overriding its defaults (``n_rounds`` = max boosting rounds/epochs).
    features: pair feature set, see ``oirl.reward.features`` (``concat`` is the paper's;
        ``concat+knn`` adds neighbour-outcome features and stores the training outcomes).
    knn: neighbour-feature settings ``{"k": 100, "temperature": 0.05}`` (only with ``+knn``).
    validation_fraction: share of query groups held out for early stopping and calibration.
    refit: after early stopping, retrain on every row for the best number of rounds.
    random_state: seeds the validation split and the backend.
    embedder: identity dict of the embedder that made the inputs (recorded, never used to embed).
    client: a ``distributed.Client``: the backend is trained on its cluster (lightgbm, xgboost). Where the
        model is trained, not what it is: not a parameter of the saved model.
    """

    def __init__(self, backend: str = "lightgbm", params: dict | None = None, features: str = "concat+knn",
                 validation_fraction: float = 0.1, refit: bool = True, random_state: int = 0,
                 embedder: dict | None = None, knn: dict | None = None, client=None):
        check_feature_set(features)
        self.client = client
        self.knn = knn
        self.backend = backend
        self.params = params
        self.features = features
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.random_state = random_state
        self.embedder = embedder

    # ------------------------------------------------------------------ fit
    def fit(self, query_emb: np.ndarray, prompt_emb: np.ndarray, y: np.ndarray,
            sample_weight: np.ndarray | None = None, groups: np.ndarray | None = None) -> PromptRewardModel:
        """Rows are (e(q), e(p), correct). ``sample_weight`` lets one row stand for many identical
        outcomes (the loss is the same); ``groups`` (e.g. query ids) keeps a query's rows together
        in the validation split — default: each distinct query embedding is a group."""
        started = time.perf_counter()
        X = pair_features(query_emb, prompt_emb, self.features)
        y = np.asarray(y, dtype=np.float32)
        w = np.ones(len(y), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
        if groups is None:
            groups = np.unique(np.asarray(query_emb), axis=0, return_inverse=True)[1].ravel()
        qid = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        pid = np.unique(np.asarray(prompt_emb), axis=0, return_inverse=True)[1].ravel()
        self.embedding_dim_ = int(np.asarray(query_emb).shape[1])
        params = {"seed": self.random_state, **(self.params or {})}
        if self.backend == "heads":  # it reads e(q) and e(p) out of the feature rows
            params["embedding_dim"] = self.embedding_dim_

        self.validation_mask_ = self._validation_mask(np.asarray(groups))
        val = self.validation_mask_
        X_all = X
        if uses_neighbours(self.features):
            # The early-stopping model must not see validation outcomes, not even as neighbours.
            probe_memory = self._memory(query_emb, prompt_emb, qid, pid, y, w, ~val)
            X = np.hstack([X_all, probe_memory.rows(qid, pid)])
            self.memory_ = self._memory(query_emb, prompt_emb, qid, pid, y, w, np.ones(len(y), bool))
            X_all = np.hstack([X_all, self.memory_.rows(qid, pid)])
        self.fit_seconds_ = {"features": time.perf_counter() - started}
        if val.any():
            probe = self._new_backend(params).fit(X[~val], y[~val], w[~val], X[val], y[val], w[val])
            self.fit_seconds_["early_stopping_fit"] = time.perf_counter() - started - sum(self.fit_seconds_.values())
            self.probe_ = (probe, probe_memory if uses_neighbours(self.features) else None)
            self.validation_proba_ = probe.predict(X[val])
            self.validation_log_loss_ = weighted_log_loss(y[val], self.validation_proba_, w[val])
            self.n_rounds_ = probe.best_iteration_
            if self.refit:
                self.backend_ = self._new_backend(params).fit(X_all, y, w, n_rounds=self.n_rounds_)
            else:
                self.backend_ = probe
                if uses_neighbours(self.features):
                    self.memory_ = probe_memory
        else:
            self.validation_proba_, self.validation_log_loss_, self.probe_ = np.zeros(0), None, None
            self.backend_ = self._new_backend(params).fit(X_all, y, w)
            self.n_rounds_ = self.backend_.best_iteration_
        self.n_features_in_ = int(X_all.shape[1])
        # Where the time went (not saved: it describes the machine, not the model); docs/scale.md uses it.
        self.fit_seconds_["final_fit"] = time.perf_counter() - started - sum(self.fit_seconds_.values())
        self.training_summary_ = {"n_rows": int(len(y)), "n_outcomes": float(w.sum()),
                                  "positive_rate": float((w * y).sum() / w.sum()),
                                  "n_groups": int(len(np.unique(groups))),
                                  "n_validation_groups": int(len(np.unique(np.asarray(groups)[val])))}
        return self

    def _new_backend(self, params: dict):
        return make_backend(self.backend, params, self.client)

    def _memory(self, query_emb, prompt_emb, qid, pid, y, w, use) -> NeighbourMemory:
        """Per (query group, prompt) logged success rates from the rows in ``use`` (NaN elsewhere)."""
        n_q, n_p = qid.max() + 1, pid.max() + 1
        hits = np.zeros((n_q, n_p))
        total = np.zeros((n_q, n_p))
        np.add.at(hits, (qid[use], pid[use]), (w * y)[use])
        np.add.at(total, (qid[use], pid[use]), w[use])
        q_first = np.unique(qid, return_index=True)[1]  # one embedding row per group
        p_first = np.unique(pid, return_index=True)[1]
        rates = np.where(total > 0, hits / np.maximum(total, 1e-12), np.nan)
        return NeighbourMemory(np.asarray(query_emb)[q_first], np.asarray(prompt_emb)[p_first], rates,
                               **(self.knn or {}))

    def _validation_mask(self, groups: np.ndarray) -> np.ndarray:
        unique = np.unique(groups)
        n_val = int(round(self.validation_fraction * len(unique)))
        if n_val == 0 or n_val == len(unique):
            return np.zeros(len(groups), dtype=bool)
        rng = np.random.default_rng(self.random_state)
        held = rng.choice(unique, size=n_val, replace=False)
        return np.isin(groups, held)

    # -------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "backend_"):
            raise RuntimeError("PromptRewardModel is not fitted; call fit() or PromptRewardModel.load()")

    def predict_proba(self, query_emb: np.ndarray, prompt_emb: np.ndarray) -> np.ndarray:
        """Row-aligned pairs -> ``(n, 2)``: [P(incorrect), P(correct)], as scikit-learn does."""
        self._check_fitted()
        X = pair_features(query_emb, prompt_emb, self.features)
        if uses_neighbours(self.features):
            X = np.hstack([X, self.memory_.pairs(query_emb, prompt_emb)])
        p = self.backend_.predict(X)
        return np.column_stack([1.0 - p, p])

    def score(self, query_emb: np.ndarray, prompt_embs: np.ndarray) -> np.ndarray:
        """Every query against every prompt: ``(n_q, d)``, ``(n_p, d)`` -> ``(n_q, n_p)`` P(correct)."""
        self._check_fitted()
        query_emb = np.atleast_2d(query_emb)
        prompt_embs = np.atleast_2d(prompt_embs)
        for name, e in (("query", query_emb), ("prompt", prompt_embs)):
            if e.shape[1] != self.embedding_dim_:
                raise ValueError(f"{name} embeddings have dim {e.shape[1]}; this model expects {self.embedding_dim_} "
                                 f"(embedder {self.embedder and self.embedder.get('name')})")
        return self._score_with(self.backend_, getattr(self, "memory_", None), query_emb, prompt_embs)

    def validation_score(self, query_emb: np.ndarray, prompt_embs: np.ndarray) -> np.ndarray:
        """``score`` by the early-stopping model, which never saw the validation queries' outcomes:
        held-out scores of *every* prompt on them, also the ones their logs never tried (partial logs).
        Only right after ``fit`` (the early-stopping model is not saved)."""
        if getattr(self, "probe_", None) is None:
            raise RuntimeError("no early-stopping model: fit() with a validation split first")
        return self._score_with(*self.probe_, np.atleast_2d(query_emb), np.atleast_2d(prompt_embs))

    def _score_with(self, backend, memory, query_emb: np.ndarray, prompt_embs: np.ndarray) -> np.ndarray:
        X = grid_features(query_emb, prompt_embs, self.features)  # (n_q * n_p, F), query-major
        if uses_neighbours(self.features):
            X = np.hstack([X, memory.grid(query_emb, prompt_embs).reshape(len(X), -1)])
        p = backend.predict(X)
        return p.reshape(len(query_emb), len(prompt_embs))

    # -------------------------------------------------------------- persist
    def get_params(self) -> dict:
        return {"backend": self.backend, "params": self.params, "features": self.features,
                "validation_fraction": self.validation_fraction, "refit": self.refit,
                "random_state": self.random_state, "embedder": self.embedder, "knn": self.knn}

    def save(self, directory, metrics: dict | None = None, extra: dict | None = None):
        """Write the backend file + ``metadata.json`` (with the file's SHA-256) to ``directory``."""
        self._check_fitted()
        meta = {
            "params": self.get_params(),
            "backend_params": self.backend_.params,
            "embedding_dim": self.embedding_dim_,
            "n_features_in": self.n_features_in_,
            "n_rounds": self.n_rounds_,
            "validation_log_loss": self.validation_log_loss_,
            "training_summary": self.training_summary_,
            "metrics": metrics or {},
            **(extra or {}),
        }
        arrays = {MEMORY_FILE: self.memory_.arrays()} if uses_neighbours(self.features) else None
        return save_artefact(directory, self.backend_, meta, arrays)

    @classmethod
    def load(cls, directory) -> PromptRewardModel:
        """Load a saved model; raises ``ArtefactError`` if the checksum or format does not match."""
        backend, meta, extras = load_artefact(directory)
        model = cls(**meta["params"])
        model.backend_ = backend
        if uses_neighbours(model.features):
            model.memory_ = NeighbourMemory.from_arrays(extras[MEMORY_FILE])
        model.embedding_dim_ = meta["embedding_dim"]
        model.n_features_in_ = meta["n_features_in"]
        model.n_rounds_ = meta["n_rounds"]
        model.validation_log_loss_ = meta["validation_log_loss"]
        model.training_summary_ = meta["training_summary"]
        model.metadata_ = meta
        return model
