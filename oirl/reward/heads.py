"""A logistic head per prompt on the query embedding, shrunk towards one shared head.

Why: a small team's logs hold one prompt per query, a few hundred tries per prompt. Trees over
768 dense features must find the query x prompt interaction themselves and, from so few rows,
barely do; the question "which prompt suits this kind of query" is a linear one per prompt.

    logit r̂(q, p) = b + a_p + x(q)·(v + H_p) + c·z(q, p)

x(q): the query embedding, centred and scaled on the training rows; v: a head shared by every
prompt (which queries are hard); H_p: prompt p's own head (which queries suit p); a_p: p's own
intercept; z: extra pair features (the neighbour estimates of ``concat+knn``), c their weights.
Minimised: the weighted cross-entropy plus

    λ/2 (|v|² + Σ_p |H_p|²) + λ_a/2 Σ_p a_p² + λ_c/2 |c|²

so with little evidence H_p stays near 0 (every prompt ranks like its mean), and the more tries
a prompt has, the more its own head speaks (the loss is a sum over observations, so λ is a fixed
Gaussian prior: its pull weakens as the data grow). "Rounds" are steps down the path ``LAMBDA_PATH``
(strongest shrinkage first); the default stops at λ = 30 whatever the validation split says. Early
stopping on the split (``early_stopping_rounds``) is available but measured worse: on the synthetic
tasks (benchmarks/synthetic_tasks.py) 30-66 validation questions preferred λ = 1000-3000, where every
prompt ranks like its mean, in 5 of 6 runs, while a fixed λ of 30-100 captured 0.11-0.70 of the
per-kind oracle's gain. The problem is convex, so the solution does not depend on the path.

Prompts are known by their embedding. A prompt never seen in training gets a similarity-weighted
mix of the known prompts' a_p and H_p (softmax of cosines at ``UNSEEN_TEMPERATURE``): a guess, which
the service marks and does not serve over a registered prompt unless asked to.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit  # no overflow warning at large |logit|

LAMBDA_PATH = (3000.0, 1000.0, 300.0, 100.0, 30.0, 10.0, 3.0, 1.0)
UNSEEN_TEMPERATURE = 0.05
SAME_PROMPT_COSINE = 0.9999  # a candidate this close to a training prompt is that prompt


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class HeadsBackend:
    """Per-prompt logistic heads with shrinkage (see the module docstring); ``embedding_dim`` is set by
    ``PromptRewardModel`` (the width of e(q) in the feature rows [e(q), e(p), z])."""

    name = "heads"
    file_name = "model.heads.npz"
    defaults = {
        "n_rounds": 5,  # LAMBDA_PATH[4] = 30
        "early_stopping_rounds": None,  # a number: choose λ on the validation split instead (see above)
        "intercept_l2": 1.0,
        "extra_l2": 1.0,
        "max_iter": 500,
        "embedding_dim": None,
        "seed": 0,
    }

    def __init__(self, params: dict | None = None):
        self.params = {**self.defaults, **(params or {})}
        self.best_iteration_: int | None = None

    # ------------------------------------------------------------------ layout
    def _split(self, X: np.ndarray):
        d = self.params["embedding_dim"]
        if not d or X.shape[1] < 2 * d:
            raise ValueError(f"heads backend: rows of {X.shape[1]} features do not hold two {d}-dim embeddings")
        X = np.asarray(X, dtype=np.float64)
        return X[:, :d], X[:, d:2 * d], X[:, 2 * d:]

    def _prompt_weights(self, p: np.ndarray) -> np.ndarray:
        """(n, n_prompts) how much each known prompt's own terms apply to each row: one-hot for a
        training prompt, a softmax over cosines for an unseen one."""
        uniq, inverse = np.unique(p, axis=0, return_inverse=True)
        cos = _unit(uniq) @ self.prompts_.T  # (n_unique, n_prompts)
        weights = np.exp((cos - cos.max(axis=1, keepdims=True)) / UNSEEN_TEMPERATURE)
        weights /= weights.sum(axis=1, keepdims=True)
        same = cos.max(axis=1) >= SAME_PROMPT_COSINE
        weights[same] = np.eye(len(self.prompts_))[cos[same].argmax(axis=1)]
        return weights[inverse.ravel()]

    # ------------------------------------------------------------------ the objective
    def _unpack(self, theta: np.ndarray, d: int, k: int, e: int):
        b, theta = theta[0], theta[1:]
        v, theta = theta[:d], theta[d:]
        a, theta = theta[:k], theta[k:]
        H, c = theta[:k * d].reshape(k, d), theta[k * d:]
        assert len(c) == e
        return b, v, a, H, c

    def _solve(self, x, onehot, z, y, w, lam: float, theta0: np.ndarray | None) -> np.ndarray:
        n, d = x.shape
        k, e = onehot.shape[1], z.shape[1]
        la, lc = self.params["intercept_l2"], self.params["extra_l2"]

        def loss_grad(theta):
            b, v, a, H, c = self._unpack(theta, d, k, e)
            logit = b + x @ v + onehot @ a + ((x @ H.T) * onehot).sum(axis=1) + z @ c  # (n,)
            p = expit(logit)
            r = w * (p - y)  # d loss / d logit, (n,)
            grad = np.concatenate([[r.sum()], x.T @ r + lam * v, onehot.T @ r + la * a,
                                   ((onehot * r[:, None]).T @ x + lam * H).ravel(), z.T @ r + lc * c])
            value = (w * (np.logaddexp(0.0, logit) - y * logit)).sum()
            value += 0.5 * (lam * (v @ v + (H * H).sum()) + la * (a @ a) + lc * (c @ c))
            return value, grad

        start = np.zeros(1 + d + k + k * d + e) if theta0 is None else theta0
        res = minimize(loss_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": self.params["max_iter"]})
        return res.x

    # ------------------------------------------------------------------ Backend interface
    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds=None):
        q, p, z = self._split(X)
        y, w = np.asarray(y, np.float64), np.asarray(w, np.float64)
        self.prompts_ = _unit(np.unique(p, axis=0))  # (n_prompts, d) the prompts with a head
        self.centre_ = q.mean(axis=0)
        self.scale_ = float(q.std()) or 1.0
        self.n_extra_ = z.shape[1]
        x, onehot = (q - self.centre_) / self.scale_, self._prompt_weights(p)
        use_val = X_val is not None and n_rounds is None and len(X_val) and self.params["early_stopping_rounds"]
        steps = n_rounds or (len(LAMBDA_PATH) if use_val else self.params["n_rounds"])
        steps = int(min(max(steps, 1), len(LAMBDA_PATH)))
        if use_val:
            qv, pv, zv = self._split(X_val)
            xv, ov = (qv - self.centre_) / self.scale_, self._prompt_weights(pv)
            yv, wv = np.asarray(y_val, np.float64), np.asarray(w_val, np.float64)
        theta, best, best_theta, best_step, bad = None, np.inf, None, 1, 0
        # Without early stopping only the last step's λ matters (a convex problem: one solution).
        for step in range(1 if use_val else steps, steps + 1):
            theta = self._solve(x, onehot, z, y, w, LAMBDA_PATH[step - 1], theta)
            if not use_val:
                continue
            self._set(theta)
            pv_hat = np.clip(self._predict(xv, ov, zv), 1e-7, 1 - 1e-7)
            val = float(-(wv * (yv * np.log(pv_hat) + (1 - yv) * np.log(1 - pv_hat))).sum() / wv.sum())
            if val < best - 1e-6:
                best, best_theta, best_step, bad = val, theta, step, 0
            else:
                bad += 1
                if bad >= self.params["early_stopping_rounds"]:
                    break
        self._set(best_theta if use_val else theta)
        self.best_iteration_ = best_step if use_val else steps
        self.lambda_ = LAMBDA_PATH[self.best_iteration_ - 1]
        return self

    def _set(self, theta: np.ndarray) -> None:
        d, k = len(self.centre_), len(self.prompts_)
        self.b_, self.v_, self.a_, self.H_, self.c_ = self._unpack(theta, d, k, self.n_extra_)

    def _predict(self, x: np.ndarray, weights: np.ndarray, z: np.ndarray) -> np.ndarray:
        own = weights @ self.a_ + ((x @ self.H_.T) * weights).sum(axis=1)  # (n,) the prompt's own terms
        logit = self.b_ + x @ self.v_ + own + z @ self.c_
        return expit(logit)

    def predict(self, X) -> np.ndarray:
        q, p, z = self._split(X)
        return self._predict((q - self.centre_) / self.scale_, self._prompt_weights(p), z)

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, prompts=self.prompts_, centre=self.centre_, scale=np.array(self.scale_), b=np.array(self.b_),
                 v=self.v_, a=self.a_, H=self.H_, c=self.c_, embedding_dim=np.array(self.params["embedding_dim"]),
                 best_iteration=np.array(self.best_iteration_))
        Path(path).write_bytes(buf.getvalue())

    def load(self, path: Path):
        with np.load(path) as f:
            self.prompts_, self.centre_, self.scale_ = f["prompts"], f["centre"], float(f["scale"])
            self.b_, self.v_, self.a_, self.H_, self.c_ = float(f["b"]), f["v"], f["a"], f["H"], f["c"]
            self.params["embedding_dim"] = int(f["embedding_dim"])
            self.best_iteration_ = int(f["best_iteration"])
        self.n_extra_ = len(self.c_)
        self.lambda_ = LAMBDA_PATH[self.best_iteration_ - 1]
        return self
