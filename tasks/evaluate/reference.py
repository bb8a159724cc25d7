"""Reference experiment that validates the survival metrics: FLCHAIN, classical Cox vs a tabular DeepSurv.

FLCHAIN ships inside scikit-survival (no download). Processing follows Kvamme et al. (pycox's
``flchain`` dataset): drop ``chapter`` (cause of death, a leak), drop rows without creatinine (6,524
remain), one-hot the categorical ``sample.yr`` and ``flc.grp``, standardise the numeric columns on the
training split. DeepSurv is an MLP trained with the project's Cox objective
(``models.heads.survival.SurvivalObjective``, Breslow baseline); the classical model is lifelines'
``CoxPHFitter(step_size=0.5)`` (the default Newton step diverges on some splits). Needs the ``dev`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NUMERIC = ("age", "kappa", "lambda", "creatinine")
CATEGORICAL = ("sample.yr", "flc.grp")


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    x_test: np.ndarray
    train: pd.DataFrame  # duration, event
    test: pd.DataFrame


def load_flchain() -> tuple[pd.DataFrame, pd.DataFrame]:
    """FLCHAIN covariates (Kvamme processing, unscaled) and a frame of ``duration``, ``event``."""
    from sksurv.datasets import load_flchain as _load

    x, y = _load()
    keep = x["creatinine"].notna().to_numpy()
    x = x.loc[keep].drop(columns=["chapter"]).reset_index(drop=True)
    labels = pd.DataFrame({"duration": y["futime"][keep].astype(float), "event": y["death"][keep].astype(float)})
    features = pd.DataFrame({c: x[c].astype(float) for c in NUMERIC})
    features["sex"] = (x["sex"].astype(str) == "M").astype(float)
    features["mgus"] = (x["mgus"].astype(str).isin(["yes", "1", "1.0"])).astype(float)
    dummies = pd.get_dummies(x[list(CATEGORICAL)].astype(str), drop_first=True, dtype=float)
    return pd.concat([features, dummies], axis=1), labels


def split(features: pd.DataFrame, labels: pd.DataFrame, seed: int, test_size: float = 0.2) -> Split:
    """Stratified (by event) train/test split; numeric columns standardised on the training part."""
    from sklearn.model_selection import train_test_split

    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels["event"], random_state=seed
    )
    x = features.to_numpy(dtype=np.float64).copy()
    cols = [features.columns.get_loc(c) for c in NUMERIC]
    mean, std = x[idx_train][:, cols].mean(axis=0), x[idx_train][:, cols].std(axis=0)
    x[:, cols] = (x[:, cols] - mean) / std
    return Split(x[idx_train], x[idx_test], labels.iloc[idx_train].reset_index(drop=True),
                 labels.iloc[idx_test].reset_index(drop=True))  # fmt: skip


def time_grid(test: pd.DataFrame, points: int = 100) -> np.ndarray:
    """pycox's evaluation grid: evenly spaced from the first to the last test duration."""
    return np.linspace(test["duration"].min(), test["duration"].max(), points)


def deepsurv_predictions(s: Split, grid: np.ndarray, seed: int = 0, epochs: int = 40) -> pd.DataFrame:
    """Train an MLP with the project's Cox objective; test-split predictions (``risk``, ``surv_<t>``)."""
    import torch

    from models.heads.survival import SurvivalObjective

    torch.manual_seed(seed)
    objective = SurvivalObjective("coxph", cox_memory=0)
    objective.fit(s.train)
    objective.horizons = [float(t) for t in grid]
    net = torch.nn.Sequential(
        torch.nn.Linear(s.x_train.shape[1], 32), torch.nn.ReLU(), torch.nn.BatchNorm1d(32), torch.nn.Dropout(0.1),
        torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.BatchNorm1d(32), torch.nn.Dropout(0.1),
        torch.nn.Linear(32, 1, bias=False),
    )  # fmt: skip
    x = torch.as_tensor(s.x_train, dtype=torch.float32)
    targets = {k: torch.as_tensor(v) for k, v in objective.encode(s.train).items()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(x), generator=g).split(256):
            if len(batch) < 2:
                continue
            opt.zero_grad()
            loss = objective.loss(net(x[batch]), {k: v[batch] for k, v in targets.items()})
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        train_log_h = net(x).view(-1).numpy().astype(np.float64)
        out = net(torch.as_tensor(s.x_test, dtype=torch.float32))
    objective.fit_baseline(train_log_h, s.train["duration"].to_numpy(), s.train["event"].to_numpy())
    return _frame(s.test, objective.columns(out))


def cox_predictions(s: Split, grid: np.ndarray) -> pd.DataFrame:
    """lifelines ``CoxPHFitter(step_size=0.5)``; test-split predictions (``risk``, ``surv_<t>``)."""
    from lifelines import CoxPHFitter

    names = [f"x{i}" for i in range(s.x_train.shape[1])]
    train = pd.DataFrame(s.x_train, columns=names).assign(duration=s.train["duration"], event=s.train["event"])
    cph = CoxPHFitter().fit(train, "duration", "event", fit_options={"step_size": 0.5})
    test = pd.DataFrame(s.x_test, columns=names)
    surv = cph.predict_survival_function(test, times=grid).to_numpy().T
    cols = {"risk": cph.predict_log_partial_hazard(test).to_numpy()}
    cols.update({f"surv_{t!r}": surv[:, j] for j, t in enumerate(grid.tolist())})
    return _frame(s.test, cols)


def _frame(test: pd.DataFrame, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    base = pd.DataFrame({"patient_id": np.arange(len(test)).astype(str), "time": test["duration"].to_numpy(),
                         "event": test["event"].to_numpy() > 0})  # fmt: skip
    return pd.concat([base, pd.DataFrame(cols)], axis=1)


# --- evidential behaviour on scikit-learn's digits (Sensoy et al. 2018, reproduced in direction) -----------


@dataclass(frozen=True)
class DigitsFigures:
    """What the evidential reference experiment measures."""

    accuracy: float  # evidential model, all 10 classes, held-out quarter
    softmax_accuracy: float
    recall_per_class: list[float]  # evidential; a dead class would show 0
    rotation: pd.DataFrame  # angle, share still predicted "1", mean u, mean normalised entropy, softmax confidence
    flip_angle: float | None  # first angle where most rotated "1"s are no longer predicted "1"
    entropy_in: float  # model trained on 0–4: mean normalised entropy on held-out 0–4
    entropy_out: float  # … and on digits 5–9 it never saw
    auroc_ood: float  # of the uncertainty u = K/S, 5–9 against held-out 0–4


def _mlp(n_out: int) -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, n_out))  # fmt: skip


def evidence(out: Any) -> Any:
    """exp of the clamped logits: unlike ReLU/softplus evidence it keeps a gradient for classes whose logits
    went negative, so no class dies (the "zero-evidence region" of Pandey & Yu, 2023)."""
    import torch

    return torch.exp(out.clamp(-10.0, 10.0))


def train_digits(
    x: np.ndarray, y: np.ndarray, n_classes: int, evidential: bool, seed: int = 0, epochs: int = 60
) -> Any:
    """An MLP on 8×8 digits: evidential (``models.losses.evidential_mse_loss``, softplus evidence, KL annealed
    over 10 epochs) or plain softmax with cross-entropy."""
    import torch

    from models.losses import evidential_mse_loss

    torch.manual_seed(seed)
    net = _mlp(n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for batch in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            out = net(xt[batch])
            if evidential:
                loss = evidential_mse_loss(evidence(out), yt[batch], min(1.0, 2 * epoch / epochs))
            else:
                loss = torch.nn.functional.cross_entropy(out, yt[batch])
            loss.backward()
            opt.step()
    return net.eval()


def dirichlet_outputs(net: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected class probabilities α/S and uncertainty u = K/S of an evidential network."""
    import torch

    with torch.no_grad():
        alpha = (
            torch.nn.functional.softplus(net(torch.as_tensor(x, dtype=torch.float32))).numpy().astype(np.float64) + 1
        )
    s = alpha.sum(axis=1, keepdims=True)
    return alpha / s, alpha.shape[1] / s[:, 0]


def softmax_outputs(net: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(net(torch.as_tensor(x, dtype=torch.float32)), dim=1).numpy().astype(np.float64)


def normalised_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy of each probability row divided by log K (0 = certain, 1 = uniform)."""
    return -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1) / np.log(p.shape[1])


def digits_experiment(
    seed: int = 0, epochs: int = 60, angles: tuple[int, ...] = tuple(range(0, 181, 10))
) -> DigitsFigures:
    """Train evidential and softmax MLPs on digits; rotate held-out "1"s; train on 0–4 and show it 5–9."""
    from scipy.ndimage import rotate
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from tasks.evaluate.uncertainty import ood_auroc

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    evid = train_digits(x_tr, y_tr, 10, evidential=True, seed=seed, epochs=epochs)
    soft = train_digits(x_tr, y_tr, 10, evidential=False, seed=seed, epochs=epochs)
    p_e, _ = dirichlet_outputs(evid, x_te)
    pred = p_e.argmax(axis=1)
    recall = [float((pred[y_te == k] == k).mean()) for k in range(10)]
    ones = x_te[y_te == 1].reshape(-1, 8, 8)
    rows = []
    for angle in angles:
        rotated = np.stack([rotate(img, angle, reshape=False, order=1) for img in ones]).reshape(len(ones), 64)
        p, u = dirichlet_outputs(evid, rotated)
        confidence = softmax_outputs(soft, rotated).max(axis=1)
        rows.append({"angle": angle, "share_predicted_1": float((p.argmax(axis=1) == 1).mean()),
                     "uncertainty": float(u.mean()), "entropy": float(normalised_entropy(p).mean()),
                     "softmax_confidence": float(confidence.mean())})  # fmt: skip
    rotation = pd.DataFrame(rows)
    flipped = rotation.loc[rotation["share_predicted_1"] < 0.5, "angle"]
    low_tr, low_te = y_tr < 5, y_te < 5
    known = train_digits(x_tr[low_tr], y_tr[low_tr], 5, evidential=True, seed=seed, epochs=epochs)
    p_in, u_in = dirichlet_outputs(known, x_te[low_te])
    p_out, u_out = dirichlet_outputs(known, x_te[~low_te])
    return DigitsFigures(
        accuracy=float((pred == y_te).mean()),
        softmax_accuracy=float((softmax_outputs(soft, x_te).argmax(axis=1) == y_te).mean()),
        recall_per_class=recall,
        rotation=rotation,
        flip_angle=float(flipped.iloc[0]) if len(flipped) else None,
        entropy_in=float(normalised_entropy(p_in).mean()),
        entropy_out=float(normalised_entropy(p_out).mean()),
        auroc_ood=ood_auroc(u_in, u_out),
    )
