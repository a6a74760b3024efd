"""Gradient-boosted tree backends behind one small interface.

A backend sees only a feature matrix, binary labels and sample weights; it minimises the
weighted cross-entropy and predicts P(correct). ``PromptRewardModel`` owns everything
else (features, validation split, metadata). Each backend saves to one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


def default_threads() -> int:
    from oirl.threads import current_plan

    return current_plan().lightgbm


class Backend(Protocol):
    name: str
    file_name: str
    params: dict
    best_iteration_: int | None

    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds: int | None = None) -> Backend: ...

    def predict(self, X) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> Backend: ...


class LightGBMBackend:
    """LightGBM binary classifier; early-stops on the validation rows when given."""

    name = "lightgbm"
    file_name = "model.lgb.txt"
    defaults = {
        "objective": "binary",
        "learning_rate": 0.1,
        "max_bin": 63,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.3,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "n_rounds": 600,
        "early_stopping_rounds": 50,
        "seed": 0,
    }

    def __init__(self, params: dict | None = None):
        self.params = {**self.defaults, **(params or {})}
        self.best_iteration_: int | None = None
        self.booster_ = None

    def _train_params(self) -> dict:
        p = {k: v for k, v in self.params.items() if k not in ("n_rounds", "early_stopping_rounds")}
        return {"verbosity": -1, "num_threads": default_threads(), **p}

    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds=None):
        import lightgbm as lgb

        train = lgb.Dataset(X, label=y, weight=w, free_raw_data=True)
        valid, callbacks = [], []
        if X_val is not None and n_rounds is None:
            valid = [lgb.Dataset(X_val, label=y_val, weight=w_val, reference=train)]
            callbacks = [lgb.early_stopping(self.params["early_stopping_rounds"], verbose=False)]
        self.booster_ = lgb.train(self._train_params(), train, num_boost_round=n_rounds or self.params["n_rounds"],
                                  valid_sets=valid, callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        return self

    def predict(self, X) -> np.ndarray:
        return self.booster_.predict(X, num_iteration=self.best_iteration_)

    def save(self, path: Path) -> None:
        self.booster_.save_model(str(path), num_iteration=self.best_iteration_)

    def load(self, path: Path):
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_file=str(path))
        self.best_iteration_ = None  # the saved file already holds exactly the kept trees
        return self


class XGBoostBackend:
    """XGBoost ``binary:logistic``; ``reference()`` gives the paper's configuration."""

    name = "xgboost"
    file_name = "model.xgb.json"
    defaults = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "eta": 0.05,
        "max_depth": 6,
        "subsample": 0.8,
        "colsample_bytree": 0.3,
        "tree_method": "hist",
        "n_rounds": 600,
        "early_stopping_rounds": 50,
        "seed": 0,
    }

    @classmethod
    def reference(cls, n_rounds: int = 2000) -> XGBoostBackend:
        """The reference implementation's trees: max_depth 10, eta 0.001, 2000 rounds, no early stop."""
        return cls({"eta": 0.001, "max_depth": 10, "subsample": 1.0, "colsample_bytree": 1.0,
                    "n_rounds": n_rounds, "early_stopping_rounds": None})

    def __init__(self, params: dict | None = None):
        self.params = {**self.defaults, **(params or {})}
        self.best_iteration_: int | None = None
        self.booster_ = None

    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds=None):
        import xgboost as xgb

        p = {k: v for k, v in self.params.items() if k not in ("n_rounds", "early_stopping_rounds")}
        p["nthread"] = default_threads()
        dtrain = xgb.DMatrix(X, label=y, weight=w)
        evals, stop = [], None
        if X_val is not None and n_rounds is None and self.params["early_stopping_rounds"]:
            evals = [(xgb.DMatrix(X_val, label=y_val, weight=w_val), "valid")]
            stop = self.params["early_stopping_rounds"]
        self.booster_ = xgb.train(p, dtrain, num_boost_round=n_rounds or self.params["n_rounds"], evals=evals,
                                  early_stopping_rounds=stop, verbose_eval=False)
        best = getattr(self.booster_, "best_iteration", None) if stop else None
        self.best_iteration_ = int(best) + 1 if best is not None else int(self.booster_.num_boosted_rounds())
        return self

    def predict(self, X) -> np.ndarray:
        import xgboost as xgb

        return self.booster_.predict(xgb.DMatrix(X), iteration_range=(0, self.best_iteration_))

    def save(self, path: Path) -> None:
        # Keep only the trees that are used, so a loaded model predicts exactly the same.
        self.booster_[: self.best_iteration_].save_model(str(path))

    def load(self, path: Path):
        import xgboost as xgb

        self.booster_ = xgb.Booster()
        self.booster_.load_model(str(path))
        self.best_iteration_ = int(self.booster_.num_boosted_rounds())
        return self


def make_backend(name: str, params: dict | None = None, client=None) -> Backend:
    """``client``: a ``distributed.Client`` to train LightGBM / XGBoost on its cluster (oirl.reward.dask_backends)."""
    if client is not None:
        from oirl.distributed import check_backend
        from oirl.reward.dask_backends import DaskLightGBMBackend, DaskXGBoostBackend

        check_backend(name)
        return (DaskLightGBMBackend if name == "lightgbm" else DaskXGBoostBackend)(params, client=client)
    if name == "lightgbm":
        return LightGBMBackend(params)
    if name == "xgboost":
        return XGBoostBackend(params)
    if name == "mlp":
        from oirl.reward.mlp import MLPBackend

        return MLPBackend(params)
    if name == "heads":
        from oirl.reward.heads import HeadsBackend

        return HeadsBackend(params)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


BACKENDS = ("lightgbm", "xgboost", "mlp", "heads")
