"""Is the challenger better than the champion? A paired bootstrap over comments.

Both models predict every comment once. Each bootstrap resample draws comments with
replacement and scores both models on the same draw, so the spread of the difference
reflects the comments, not two independent samples. The challenger wins only when the
lower end of the confidence interval of the macro-F1 difference is above zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from feedback_nlp.errors import InvalidInputError
from feedback_nlp.labels import is_single_label
from feedback_nlp.metrics import label_matrix

MAX_CELLS = 4_000_000  # resamples x comments per block: bounds memory on big evaluation sets


@dataclass
class Interval:
    champion: float
    challenger: float
    diff: float
    low: float
    high: float


@dataclass
class Comparison:
    n: int
    n_boot: int
    confidence: float
    seed: int
    macro_f1: Interval
    per_theme: dict[str, Interval]
    champion: str = ""
    challenger: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def better(self) -> bool:
        """The challenger is better beyond the interval."""
        return self.macro_f1.low > 0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["better"] = self.better
        return out

    def render(self) -> str:
        pct = f"{self.confidence:.0%}"
        lines = [
            f"champion   {self.champion}",
            f"challenger {self.challenger}",
            f"{self.n} comments, {self.n_boot} paired bootstrap resamples (seed {self.seed}), {pct} intervals",
            "",
            f"{'theme':<20}{'champion':>9}{'challenger':>11}{'diff':>9}   {pct + ' CI':<18}",
        ]

        def row(name: str, iv: Interval) -> str:
            if iv.low > 0:
                verdict = "better"
            elif iv.high < 0:
                verdict = "worse"
            else:
                verdict = "no clear difference"
            ci = f"[{iv.low:+.3f}, {iv.high:+.3f}]"
            return f"{name:<20}{iv.champion:>9.3f}{iv.challenger:>11.3f}{iv.diff:>+9.3f}   {ci:<18}{verdict}"

        lines += [row(t, iv) for t, iv in self.per_theme.items()]
        lines.append(row("macro F1", self.macro_f1))
        lines += [f"note: {n}" for n in self.notes]
        lines.append("")
        m = self.macro_f1
        if self.better:
            lines.append(f"verdict: the challenger is better (macro-F1 difference {m.diff:+.3f}, CI lower bound {m.low:+.3f} > 0)")
        else:
            lines.append(f"verdict: the challenger is not shown to be better (CI lower bound {m.low:+.3f} <= 0)")
        return "\n".join(lines)


def indicator_predictions(model, texts) -> tuple[list[str], np.ndarray]:
    """Theme ids and a 0/1 matrix [n, k] of what ``model`` tags each text with."""
    ids = [str(c) for c in model.classes_]
    tagged = model.decide(model.predict_proba(texts))
    return ids, np.asarray(tagged, dtype=np.int8).reshape(len(texts), len(ids))


def truth_matrix(labels, ids: list[str]) -> np.ndarray:
    if is_single_label(labels):
        truth = np.array([str(v) for v in labels])
        return (truth[:, None] == np.array(ids)[None, :]).astype(np.int8)
    return label_matrix(labels, ids).astype(np.int8)


def bootstrap_f1_difference(
    Y: np.ndarray, A: np.ndarray, B: np.ndarray, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[Interval, list[Interval]]:
    """Paired bootstrap of per-theme and macro F1 of B minus A against truth Y (all [n, k] 0/1).

    A resample is a vector of counts (how often each comment was drawn), so the TP/FP/FN
    of every resample come out of one matrix product per block of resamples.
    """
    Y, A, B = (np.asarray(M, dtype=np.float64) for M in (Y, A, B))
    n, k = Y.shape
    if n == 0:
        raise InvalidInputError("no comments to compare on")
    # Per comment and theme, for each model: TP and FP+FN indicators; F1 = 2TP / (2TP + FP + FN).
    parts = [Y * A, (1 - Y) * A + Y * (1 - A), Y * B, (1 - Y) * B + Y * (1 - B)]
    stacked = np.hstack(parts)  # [n, 4k]

    def f1(tp, wrong):
        denom = 2 * tp + wrong
        return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)  # zero_division=0, as sklearn

    def scores(counts):  # counts: [m, 4k]
        tp_a, wrong_a, tp_b, wrong_b = np.split(counts, 4, axis=1)
        return f1(tp_a, wrong_a), f1(tp_b, wrong_b)

    full_a, full_b = scores(stacked.sum(axis=0, keepdims=True))
    rng = np.random.default_rng(seed)
    diffs_theme = np.empty((n_boot, k))
    block = max(1, MAX_CELLS // n)
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=m).astype(np.float64)  # [m, n]
        fa, fb = scores(counts @ stacked)
        diffs_theme[start : start + m] = fb - fa
    diffs_macro = diffs_theme.mean(axis=1)
    alpha = (1 - confidence) / 2
    lo_t, hi_t = np.quantile(diffs_theme, [alpha, 1 - alpha], axis=0)
    lo_m, hi_m = np.quantile(diffs_macro, [alpha, 1 - alpha])
    macro = Interval(
        float(full_a.mean()), float(full_b.mean()), float(full_b.mean() - full_a.mean()), float(lo_m), float(hi_m)
    )
    per_theme = [
        Interval(float(full_a[0, j]), float(full_b[0, j]), float(full_b[0, j] - full_a[0, j]), float(lo_t[j]), float(hi_t[j]))
        for j in range(k)
    ]
    return macro, per_theme


def compare_models(
    champion, challenger, texts, labels, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Comparison:
    """Compare two fitted models on the same labelled comments (see module docstring)."""
    if n_boot < 1:
        raise InvalidInputError("n_boot must be at least 1")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")
    ids_a, A = indicator_predictions(champion, texts)
    ids_b, B = indicator_predictions(challenger, texts)
    if set(ids_a) != set(ids_b):
        raise InvalidInputError(
            f"the models tag different themes: champion {', '.join(ids_a)}; challenger {', '.join(ids_b)}"
        )
    B = B[:, [ids_b.index(t) for t in ids_a]]
    Y = truth_matrix(labels, ids_a)
    notes = []
    unseen = [t for j, t in enumerate(ids_a) if Y[:, j].sum() == 0]
    if unseen:
        notes.append(f"no labelled example of {', '.join(unseen)} in the evaluation data: their F1 is 0 or undefined")
    macro, per_theme = bootstrap_f1_difference(Y, A, B, n_boot=n_boot, seed=seed, confidence=confidence)
    return Comparison(
        n=len(texts), n_boot=n_boot, confidence=confidence, seed=seed, macro_f1=macro,
        per_theme=dict(zip(ids_a, per_theme)), champion=_describe(champion), challenger=_describe(challenger), notes=notes,
    )


def _describe(model) -> str:
    manifest = getattr(model, "manifest_", None) or {}
    where = getattr(model, "path_", None)
    name = " ".join(str(manifest[k]) for k in ("name", "version") if manifest.get(k))
    return f"{name} ({where})" if where else (name or type(model).__name__)
