"""A small torch MLP reward backend: features -> hidden (ReLU) x2 -> logit, weighted BCE.

Early-stops on the validation rows' weighted log loss and keeps the best epoch's weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn


class MLPBackend:
    name = "mlp"
    file_name = "model.mlp.pt"
    defaults = {
        "hidden": 256,
        "dropout": 0.2,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 512,
        "n_rounds": 40,  # epochs
        "early_stopping_rounds": 5,
        "seed": 0,
    }

    def __init__(self, params: dict | None = None):
        self.params = {**self.defaults, **(params or {})}
        self.best_iteration_: int | None = None
        self.net_: nn.Module | None = None
        self.n_features_: int | None = None

    def _build(self, n_features: int) -> nn.Module:
        h, drop = self.params["hidden"], self.params["dropout"]
        return nn.Sequential(nn.Linear(n_features, h), nn.ReLU(), nn.Dropout(drop),
                             nn.Linear(h, h), nn.ReLU(), nn.Dropout(drop), nn.Linear(h, 1))

    @staticmethod
    def _loss(net, X, y, w) -> float:
        net.eval()
        with torch.no_grad():
            logits = net(X).squeeze(1)
            losses = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
            return float((losses * w).sum() / w.sum())

    def fit(self, X, y, w, X_val=None, y_val=None, w_val=None, n_rounds=None):
        torch.manual_seed(self.params["seed"])
        rng = np.random.default_rng(self.params["seed"])
        X_t, y_t, w_t = (torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (X, y, w))
        self.n_features_ = X_t.shape[1]
        net = self._build(self.n_features_)
        opt = torch.optim.AdamW(net.parameters(), lr=self.params["lr"], weight_decay=self.params["weight_decay"])
        use_val = X_val is not None and n_rounds is None
        if use_val:
            Xv, yv, wv = (torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (X_val, y_val, w_val))
        best, best_state, best_epoch, bad = np.inf, None, 0, 0
        epochs = n_rounds or self.params["n_rounds"]
        bs = self.params["batch_size"]
        for epoch in range(1, epochs + 1):
            net.train()
            for idx in np.array_split(rng.permutation(len(X_t)), max(1, len(X_t) // bs)):
                logits = net(X_t[idx]).squeeze(1)  # (batch,)
                loss = (nn.functional.binary_cross_entropy_with_logits(logits, y_t[idx], reduction="none")
                        * w_t[idx]).sum() / w_t[idx].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if use_val:
                val = self._loss(net, Xv, yv, wv)
                if val < best - 1e-5:
                    best, best_state, best_epoch, bad = val, copy.deepcopy(net.state_dict()), epoch, 0
                else:
                    bad += 1
                    if bad >= self.params["early_stopping_rounds"]:
                        break
        if best_state is not None:
            net.load_state_dict(best_state)
            self.best_iteration_ = best_epoch
        else:
            self.best_iteration_ = epochs
        self.net_ = net.eval()
        return self

    def predict(self, X) -> np.ndarray:
        with torch.no_grad():
            logits = self.net_(torch.as_tensor(np.asarray(X, dtype=np.float32))).squeeze(1)
            return torch.sigmoid(logits).numpy().astype(np.float64)

    def save(self, path: Path) -> None:
        torch.save({"n_features": self.n_features_, "state_dict": self.net_.state_dict()}, path)

    def load(self, path: Path):
        blob = torch.load(path, map_location="cpu", weights_only=True)
        self.n_features_ = int(blob["n_features"])
        self.net_ = self._build(self.n_features_)
        self.net_.load_state_dict(blob["state_dict"])
        self.net_.eval()
        return self
