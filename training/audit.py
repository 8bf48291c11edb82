"""Find likely mislabelled rows with cleanlab, from cross-validated predictions.

Every row gets a score per theme from a model that did not see it (k-fold). Multi-label
data is audited one theme at a time as a binary problem (has the theme or not): cleanlab's
confident learning flags rows whose label disagrees confidently with those scores, and
the flag says the fix — add or remove that theme. Single-label data is one multi-class
problem; the fix is the class the model prefers. Rows are ranked by cleanlab's label
quality score, worst first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from feedback_nlp import ThemeClassifier, read_labelled
from feedback_nlp.encoders import CachedEncoder, load_encoder
from feedback_nlp.errors import InvalidInputError
from feedback_nlp.labels import is_single_label, normalize_label, short_polarity
from feedback_nlp.metrics import label_matrix


@dataclass
class Fix:
    theme: str
    action: str  # "add", "remove" or "relabel"
    score: float  # the cross-validated score of that theme
    quality: float  # cleanlab's label quality of the given label (0 = surely wrong)


@dataclass
class LabelIssue:
    row: int  # 1-based row in the data
    text: str
    given: dict | str
    quality: float
    fixes: list[Fix] = field(default_factory=list)

    def describe_fix(self) -> str:
        return "; ".join(
            f"relabel as {f.theme}" if f.action == "relabel" else f"{f.action} {f.theme} (score {f.score:.2f})"
            for f in self.fixes
        )


@dataclass
class AuditReport:
    rows: int
    folds: int
    issues: list[LabelIssue]
    found: int  # issues before truncation to the top n

    def to_dict(self) -> dict:
        return {"rows": self.rows, "folds": self.folds, "found": self.found, "issues": [asdict(i) for i in self.issues]}

    def render(self) -> str:
        lines = [f"{self.rows} rows, {self.folds}-fold cross-validated scores; {self.found} likely label issue(s)"
                 + (f", top {len(self.issues)} shown" if len(self.issues) < self.found else "")]
        if not self.issues:
            return lines[0]
        lines.append(f"{'row':>6}  {'quality':>7}  text / suggested fix")
        for issue in self.issues:
            text = issue.text if len(issue.text) <= 100 else issue.text[:97] + "..."
            lines.append(f"{issue.row:>6}  {issue.quality:>7.3f}  {text}")
            lines.append(f"{'':>17}-> {issue.describe_fix()}")
        return "\n".join(lines)


def cross_val_scores(texts, labels, params: dict, *, folds: int = 5, seed: int = 0) -> tuple[list[str], np.ndarray, int]:
    """Out-of-fold theme scores [n, k]: each row scored by a model fitted without it.

    Each text is encoded once (a shared in-memory cache); fold models use a fixed
    threshold, since only their scores are needed.
    """
    params = dict(params)
    params["encoder"] = CachedEncoder(load_encoder(params.get("encoder")))
    params["threshold"] = 0.5
    single = is_single_label(labels)
    # One fit on all rows fixes the taxonomy and theme order every fold shares (cheap:
    # the encodings are cached and reused by the folds).
    full = ThemeClassifier(**params).fit(texts, labels)
    ids = [str(c) for c in full.classes_]
    if single:
        strata = np.array([ids.index(str(v)) for v in labels])
        smallest = int(np.bincount(strata).min())
    else:
        counts = label_matrix(labels, ids).sum(axis=0)
        strata = label_matrix(labels, ids)[:, int(np.argmin(counts))]  # stratify on the rarest theme
        smallest = int(counts.min())
    n = len(texts)
    k = min(folds, n, smallest) if smallest >= 2 else min(folds, n)
    if k < 2:
        raise InvalidInputError(f"too little data to cross-validate ({n} rows)")
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), strata) if smallest >= k
                else KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))
    params["taxonomy"] = full.taxonomy_
    P = np.zeros((n, len(ids)))
    for train, test in splitter:
        model = ThemeClassifier(**params)
        try:
            model.fit([texts[i] for i in train], [labels[i] for i in train])
        except InvalidInputError as exc:
            raise InvalidInputError(f"a cross-validation fold cannot be trained ({exc}); add examples of rare themes or lower --folds") from None
        scores = model.predict_proba([texts[i] for i in test])
        cols = [list(map(str, model.classes_)).index(t) if t in model.classes_ else None for t in ids]
        for j, c in enumerate(cols):
            P[test, j] = scores[:, c] if c is not None else 0.0
    return ids, P, k


def find_label_issues(texts, labels, params: dict | None = None, *, folds: int = 5, seed: int = 0, top: int | None = 50) -> AuditReport:
    """Likely mislabelled rows, worst first (see module docstring)."""
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels):
        raise InvalidInputError(f"{len(texts)} texts but {len(labels)} labels")
    ids, P, k = cross_val_scores(texts, labels, params or {}, folds=folds, seed=seed)
    P = np.clip(P, 1e-6, 1 - 1e-6)
    issues: dict[int, LabelIssue] = {}
    if is_single_label(labels):
        y = np.array([ids.index(str(v)) for v in labels])
        probs = P / P.sum(axis=1, keepdims=True)
        flagged = cl_find(y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
        quality = get_label_quality_scores(y, probs)
        for i in np.flatnonzero(flagged):
            best = int(np.argmax(probs[i]))
            issues[i] = LabelIssue(i + 1, texts[i], str(labels[i]), float(quality[i]),
                                   [Fix(ids[best], "relabel", float(probs[i, best]), float(quality[i]))])
    else:
        Y = label_matrix(labels, ids)
        for j, theme in enumerate(ids):
            y = Y[:, j]
            if y.sum() < 2 or y.sum() > len(y) - 2:
                continue  # confident learning needs a few examples of both classes
            probs = np.column_stack([1 - P[:, j], P[:, j]])
            flagged = cl_find(y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
            quality = get_label_quality_scores(y, probs)
            for i in np.flatnonzero(flagged):
                fix = Fix(theme, "remove" if y[i] else "add", float(P[i, j]), float(quality[i]))
                issue = issues.setdefault(i, LabelIssue(i + 1, texts[i], _short(labels[i]), 1.0))
                issue.fixes.append(fix)
                issue.quality = min(issue.quality, fix.quality)
        for issue in issues.values():
            issue.fixes.sort(key=lambda f: f.quality)
    ranked = sorted(issues.values(), key=lambda i: (i.quality, i.row))
    return AuditReport(rows=len(texts), folds=k, issues=ranked[:top] if top else ranked, found=len(ranked))


def _short(label) -> dict:
    return {t: short_polarity(p) for t, p in normalize_label(label).items()}


def audit_file(data, config=None, *, folds: int | None = None, top: int | None = 50) -> AuditReport:
    """Audit a labelled file with a training config (:class:`training.pipeline.TrainConfig`)."""
    from training.pipeline import TrainConfig

    config = config or TrainConfig()
    texts, labels = read_labelled(data, config.text_column, config.label_column)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    report = find_label_issues([texts[i] for i in keep], [labels[i] for i in keep], config.classifier_params(),
                               folds=folds or config.cv, seed=config.seed, top=top)
    for issue in report.issues:  # back to row numbers in the file
        issue.row = keep[issue.row - 1] + 1
    return report
