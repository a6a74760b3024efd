"""The LightGBM and XGBoost backends trained by the engines' own Dask estimators on a cluster.

Same interface, parameters and saved file as the local backends (they subclass them): only
``fit`` differs, so a model trained on a cluster predicts, saves and loads exactly like a local
one. The client holds the feature matrix; ``oirl.distributed.scatter_rows`` sends its row
partitions to the workers, where the trees are grown data-parallel.

Early stopping follows the local rule (weighted log loss on the same validation rows, patience
``early_stopping_rounds``, keep the best round). XGBoost's Dask trainer does it natively
(its metrics are all-reduced). LightGBM's Dask estimator does not support early stopping:
each worker would judge its own slice of the validation rows and stop at a different round,
and the others then hang waiting for it (LightGBM issues #3712, #6351). Here every worker gets
the *whole* validation set in ``_GlobalEarlyStopping``; data-parallel workers hold identical
trees, so they compute the same loss and stop at the same round.
"""

from __future__ import annotations

import warnings

import numpy as np

from oirl.reward.backends import LightGBMBackend, XGBoostBackend

WHOLE_VALIDATION = "whole_validation"


def _partitions(client) -> int:
    """Two row partitions per worker: enough to balance, few enough to keep per-partition overhead small."""
    return 2 * max(1, len(client.nthreads()))


class _AddWholeValidationSet:
    """LightGBM callback, before the first round on every worker: the whole validation set joins the booster,
    binned like the training set, so LightGBM updates its scores tree by tree (a full prediction per round
    cost 4 µs per validation row per round). Before, not after: the evaluation recorders see it from round 0."""

    before_iteration = True

    def __init__(self, X_val: np.ndarray, y_val: np.ndarray, w_val: np.ndarray):
        self.data: tuple | None = (X_val, y_val, w_val)

    def __call__(self, env) -> None:
        import lightgbm as lgb

        if self.data is not None:
            X_val, y_val, w_val = self.data
            env.model.add_valid(lgb.Dataset(X_val, label=y_val, weight=w_val, reference=env.model.train_set),
                                WHOLE_VALIDATION)
            self.data = None  # LightGBM holds it, binned


class _GlobalEarlyStopping:
    """LightGBM callback, after each round on every worker: lgb.early_stopping's rule on the whole validation
    set. Data-parallel workers hold the same trees and the same rows there, so they stop at the same round."""

    order = 30  # after LightGBM's own callbacks, like lgb.early_stopping

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss, self.best_iteration = np.inf, 0

    def __call__(self, env) -> None:
        from lightgbm.callback import EarlyStopException

        loss = next(value for name, metric, value, _ in env.model.eval_valid()
                    if name == WHOLE_VALIDATION and metric == "binary_logloss")
        if loss < self.best_loss:
            self.best_loss, self.best_iteration = loss, env.iteration
        last = env.iteration == env.end_iteration - 1
        if last or env.iteration - self.best_iteration >= self.patience:
            raise EarlyStopException(self.best_iteration, [("valid", "binary_logloss", self.best_loss, False)])


class DaskLightGBMBackend(LightGBMBackend):
    """``lightgbm.DaskLGBMClassifier`` on the client's cluster; threads per worker are the worker's own."""

    def __init__(self, params: dict | None = None, client=None):
        super().__init__(params)
        self.client = client

    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds=None):
        import lightgbm as lgb

        from oirl.distributed import scatter_rows

        params = {k: v for k, v in self.params.items() if k not in ("n_rounds", "early_stopping_rounds")}
        params["verbosity"] = -1
        callbacks = []
        if X_val is not None and n_rounds is None:
            callbacks = [_AddWholeValidationSet(np.asarray(X_val), np.asarray(y_val), np.asarray(w_val)),
                         _GlobalEarlyStopping(self.params["early_stopping_rounds"])]
        dX, dy, dw = scatter_rows(self.client, [np.asarray(X), np.asarray(y), np.asarray(w)],
                                  _partitions(self.client))
        model = lgb.DaskLGBMClassifier(client=self.client, n_estimators=n_rounds or self.params["n_rounds"],
                                       **params)
        with self.client.as_current(), warnings.catch_warnings():  # lightgbm.dask waits with the *current* client
            # The sklearn wrapper always carries n_jobs; lightgbm.dask drops it for each worker's own thread count.
            warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
            model.fit(dX, dy, sample_weight=dw, callbacks=callbacks)
        self.booster_ = model.to_local().booster_
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        return self


class DaskXGBoostBackend(XGBoostBackend):
    """``xgboost.dask.train`` on the client's cluster; threads per worker are the worker's own."""

    def __init__(self, params: dict | None = None, client=None):
        super().__init__(params)
        self.client = client

    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds=None):
        from xgboost import dask as dxgb

        from oirl.distributed import scatter_rows

        p = {k: v for k, v in self.params.items() if k not in ("n_rounds", "early_stopping_rounds")}
        n_parts = _partitions(self.client)
        with self.client.as_current():  # xgboost.dask looks the client up as the current one
            dtrain = dxgb.DaskDMatrix(self.client, *scatter_rows(self.client, [X, y], n_parts),
                                      weight=scatter_rows(self.client, [w], n_parts)[0])
            evals, stop = [], None
            if X_val is not None and n_rounds is None and self.params["early_stopping_rounds"]:
                vX, vy, vw = scatter_rows(self.client, [X_val, y_val, w_val], n_parts)
                evals = [(dxgb.DaskDMatrix(self.client, vX, vy, weight=vw), "valid")]
                stop = self.params["early_stopping_rounds"]
            out = dxgb.train(self.client, p, dtrain, num_boost_round=n_rounds or self.params["n_rounds"],
                             evals=evals, early_stopping_rounds=stop, verbose_eval=False)
        self.booster_ = out["booster"]
        best = getattr(self.booster_, "best_iteration", None) if stop else None
        self.best_iteration_ = int(best) + 1 if best is not None else int(self.booster_.num_boosted_rounds())
        return self
