"""The heads on top of an encoder: fitted weights as plain arrays, saved without pickle.

A head turns vectors into probabilities: :class:`LinearHead` (one theme or polarity),
:class:`SoftmaxHead` (single-label models), :class:`ConstantHead` (a class that never
varied in training), and the lexical heads of ``feedback_nlp.lexical``. Each one gives
its state as JSON values plus named numpy arrays (:func:`pack`) and is rebuilt from them
(:func:`unpack`), so a model folder holds ``heads.json`` + ``heads.npz`` and loading it
runs no code from the file.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .errors import ArtifactError
from .lexical import LexicalHeads


class ConstantHead:
    """A head for a class that had one value in training (a fold where a theme never occurs)."""

    kind = "constant"

    def __init__(self, value: float):
        self.value = float(value)

    def predict_proba(self, X):
        p = np.full(len(X), self.value)
        return np.column_stack([1 - p, p])

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"value": self.value}, {}

    @classmethod
    def from_state(cls, meta: dict, arrays: Mapping[str, np.ndarray]) -> "ConstantHead":
        return cls(meta["value"])


class LinearHead:
    """A fitted binary logistic head, weights only: p(positive) = sigmoid(x . w + b)."""

    kind = "linear"

    def __init__(self, coef: np.ndarray, intercept: float):
        self.coef = np.asarray(coef, dtype=np.float64).ravel()
        self.intercept = float(intercept)

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-(np.asarray(X, dtype=np.float64) @ self.coef + self.intercept)))
        return np.column_stack([1 - p, p])

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"intercept": self.intercept}, {"coef": self.coef}

    @classmethod
    def from_state(cls, meta: dict, arrays: Mapping[str, np.ndarray]) -> "LinearHead":
        return cls(arrays["coef"], meta["intercept"])


class SoftmaxHead:
    """A fitted multinomial logistic head, weights only (single-label models)."""

    kind = "softmax"

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, X):
        z = np.asarray(X, dtype=np.float64) @ self.coef.T + self.intercept
        if z.shape[1] == 1:  # two classes: scikit-learn keeps one row of weights
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1 - p, p])
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"classes": [str(c) for c in self.classes_]}, {"coef": self.coef, "intercept": self.intercept}

    @classmethod
    def from_state(cls, meta: dict, arrays: Mapping[str, np.ndarray]) -> "SoftmaxHead":
        return cls(arrays["coef"], arrays["intercept"], np.array(meta["classes"]))


KINDS = {cls.kind: cls for cls in (ConstantHead, LinearHead, SoftmaxHead, LexicalHeads)}


def pack(tree) -> tuple[object, dict[str, np.ndarray]]:
    """A tree of heads (dicts, lists, numbers, None) -> (JSON-able tree, arrays by name).

    Each head becomes ``{"$head": kind, ...its JSON state}``; its arrays are stored under
    ``<path>/<name>`` (e.g. ``theme_heads/0/coef``) and numpy arrays in the tree under their path.
    """
    arrays: dict[str, np.ndarray] = {}

    def walk(node, path: str):
        if hasattr(node, "kind") and node.kind in KINDS and hasattr(node, "state"):
            node_kind, (meta, found) = node.kind, node.state()
        elif isinstance(node, Mapping):
            return {str(k): walk(v, f"{path}/{k}") for k, v in node.items()}
        elif isinstance(node, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(node)]
        elif isinstance(node, np.ndarray):
            arrays[path] = node
            return {"$array": path}
        elif isinstance(node, np.generic):
            return node.item()
        elif node is None or isinstance(node, (str, int, float, bool)):
            return node
        else:
            raise ArtifactError(f"{path or 'heads'}: cannot store a {type(node).__name__} in a model folder")
        for name, value in found.items():
            arrays[f"{path}/{name}"] = np.asarray(value)
        return {"$head": node_kind, **meta}

    return walk(tree, ""), arrays


def unpack(tree, arrays: Mapping[str, np.ndarray], where: str = "heads"):
    """The inverse of :func:`pack`."""

    def walk(node, path: str):
        if isinstance(node, dict):
            if "$head" in node:
                cls = KINDS.get(node["$head"])
                if cls is None:
                    raise ArtifactError(f"{where}: unknown head kind {node['$head']!r} at {path or '/'}")
                prefix = f"{path}/"
                found = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix) and "/" not in k[len(prefix):]}
                return cls.from_state(node, found)
            if set(node) == {"$array"}:
                if node["$array"] not in arrays:
                    raise ArtifactError(f"{where}: array {node['$array']!r} is missing")
                return arrays[node["$array"]]
            return {k: walk(v, f"{path}/{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(node)]
        return node

    return walk(tree, "")
