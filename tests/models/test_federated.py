"""Federation pieces that need no runtime: label-encoding agreement, option refusal, the server's architecture,
and the traffic log's picture of a message."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from models.federated.network import GlobalNetwork
from models.federated.plan import FederationPlan, Site, agree_objective, label_summary
from models.federated.server import describe
from tasks.errors import ConfigError

SITES = [Site("site-1", "dataset-a", "labels-a"), Site("site-2", "dataset-b", "labels-b")]


def test_pooled_regression_encoding_equals_the_pooled_data() -> None:
    rng = np.random.default_rng(0)
    parts = [pd.DataFrame({"target": rng.normal(m, 5, n)}) for m, n in ((60, 40), (45, 15), (35, 7))]
    state = agree_objective("regression", None, [label_summary("regression", p) for p in parts])
    pooled = pd.concat(parts)["target"]
    assert math.isclose(state["mean"], pooled.mean()) and math.isclose(state["std"], pooled.std(ddof=0))


def test_classes_are_the_union_and_discrete_survival_is_refused() -> None:
    summaries = [label_summary("classification", pd.DataFrame({"target": t})) for t in (["a", "b"], ["b", "c"])]
    assert agree_objective("classification", None, summaries)["classes"] == ["a", "b", "c"]
    survival = [{"n": 5, "events": 1, "max_duration": 800.0}]
    assert agree_objective("survival", "coxph", survival)["horizons"] == [30, 90, 180, 365, 730]
    with pytest.raises(ConfigError, match="coxph"):
        agree_objective("survival", "deephit", survival)


def test_a_plan_refuses_what_a_federation_cannot_honour() -> None:
    with pytest.raises(ConfigError, match="two sites"):
        FederationPlan("regression", SITES[:1])
    with pytest.raises(ConfigError, match="resume"):
        FederationPlan("regression", SITES, {"resume": "run-0123456789abcdef"})
    with pytest.raises(ConfigError, match="tabular"):
        FederationPlan("regression", SITES, {"tabular": ["age"]})
    with pytest.raises(ConfigError, match="mu"):
        FederationPlan("regression", SITES, algorithm="fedprox", mu=0.0)
    with pytest.raises(ConfigError, match="local batches"):
        FederationPlan("regression", SITES, local_batches=0)


def test_global_weights_have_the_lightning_modules_names() -> None:
    from models.heads import build_objective
    from models.heads.fusion import FusionHead
    from models.module import ClinicalModel, InputSpec
    from models.networks import build_backbone

    backbone = build_backbone("cnn3d")
    module = ClinicalModel(backbone, FusionHead(backbone.out_features, 1), build_objective("regression"), InputSpec())
    network = GlobalNetwork("cnn3d", 1)
    assert network.state_dict().keys() == module.state_dict().keys()
    module.load_state_dict(network.state_dict())  # strict


def test_the_traffic_picture_keeps_shapes_and_text_never_values() -> None:
    picture = describe({"w": torch.ones(2, 3), "meta": {"n": 3, "note": "x"}, "blob": b"abc"})
    assert picture == {"w": {"array": [2, 3], "dtype": "torch.float32"}, "meta": {"n": 3, "note": "x"},
                       "blob": {"bytes": 3}}  # fmt: skip
