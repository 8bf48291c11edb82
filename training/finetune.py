"""Fine-tuning of the sentence-transformers encoder (``train --finetune``).

Two objectives (``finetune_objective``):

- ``"classify"`` (the default): the body is trained end to end with a linear layer on its
  pooled embedding, against the labels themselves: binary cross-entropy over the themes
  (multi-label) plus, for polar themes, a masked binary cross-entropy over their polarity;
  cross-entropy over the classes for single-label data. The layer is thrown away afterwards:
  the model's usual heads (per-sentence scoring, calibration, tuned thresholds, polarity from
  the evidence) are fitted on the tuned body's embeddings, so everything downstream, the ONNX
  export included, is unchanged.
- ``"contrastive"``: SetFit-style pairs of training comments are drawn, each with a target similarity, and
the encoder is trained so the cosine of the two embeddings approaches it
(``CosineSimilarityLoss``). Our labels are sets (themes, with polarity), so the target is
the Jaccard overlap of the two comments' tag sets: 1 for the same tags, 0 for none in
common, in between for partial overlap. Single-label data reduces to 1/0.

The heads are then fitted on the fine-tuned encoder as usual, and the encoder folder is
saved inside the model folder (``encoder/``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from feedback_nlp.errors import InvalidInputError


@dataclass
class FinetuneSettings:
    objective: str = "classify"  # or "contrastive"
    epochs: int = 1
    head_learning_rate: float = 1e-3  # the throw-away linear layer of the "classify" objective
    pairs_per_example: int = 4  # SetFit draws 20 (40 pairs); on 2 CPU cores that is hours for a few thousand texts
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup: float = 0.1  # share of the steps with a linear learning-rate warm-up
    max_seq_length: int = 128
    seed: int = 0


def tag_sets(labels: Sequence) -> list[frozenset[str]]:
    """One set of tags per row: a theme and, when known, theme:polarity; a class name for single-label rows."""
    out = []
    for label in labels:
        if isinstance(label, dict):
            tags = set(label)
            tags.update(f"{theme}:{polarity}" for theme, polarity in label.items() if polarity)
            out.append(frozenset(tags) or frozenset({"(none)"}))
        else:
            out.append(frozenset({str(label)}))
    return out


def make_pairs(tags: Sequence[frozenset[str]], pairs_per_example: int, seed: int = 0) -> list[tuple[int, int, float]]:
    """(i, j, target) pairs: for each example, half partners sharing one of its tags, half random ones."""
    rng = random.Random(seed)
    by_tag: dict[str, list[int]] = {}
    for i, row in enumerate(tags):
        for tag in sorted(row):
            by_tag.setdefault(tag, []).append(i)
    n = len(tags)
    pairs = []
    for i, row in enumerate(tags):
        for k in range(pairs_per_example):
            if k % 2 == 0:
                pool = by_tag[rng.choice(sorted(row))]
                j = rng.choice(pool) if len(pool) > 1 else rng.randrange(n)
                if j == i and len(pool) > 1:
                    j = pool[(pool.index(i) + 1) % len(pool)]
            else:
                j = rng.randrange(n)
            union = tags[i] | tags[j]
            pairs.append((i, j, len(tags[i] & tags[j]) / len(union)))
    rng.shuffle(pairs)
    return pairs


def _losses():
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 5
        from sentence_transformers import losses
    return losses


def classify_targets(labels: Sequence) -> tuple[list[str], list[str], list[list[float]], list[list[float]]] | list[str]:
    """Targets for the "classify" objective.

    Multi-label rows (dicts) -> (themes, polar themes, theme targets [n, k], polarity targets
    [n, p] with 1 positive / 0 negative / -1 unknown). Single-label rows -> the sorted classes.
    """
    if not labels or not isinstance(labels[0], dict):
        return sorted({str(label) for label in labels})
    themes = sorted({t for row in labels for t in row})
    polar = sorted({t for row in labels for t, p in row.items() if p})
    theme_y = [[float(t in row) for t in themes] for row in labels]
    sign = {"positive": 1.0, "negative": 0.0}
    polarity_y = [[sign.get(row.get(t), -1.0) for t in polar] for row in labels]
    return themes, polar, theme_y, polarity_y


def sortish_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, window: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort each window of ``window`` batches by
    length, cut, shuffle the batches. Short survey comments then are not padded to long ones,
    which is most of the cost of an epoch on a CPU."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def finetune_encoder(
    model: str,
    texts: Sequence[str],
    labels: Sequence,
    output: str | Path,
    settings: FinetuneSettings | None = None,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
    weights: Sequence[float] | None = None,
) -> Path:
    """Fine-tune the sentence-transformers ``model`` (name or folder) on labelled texts; save it to ``output``.

    ``weights``: how much each text counts in the "classify" loss (None: all the same).
    Uses a GPU when torch sees one; otherwise the CPU.
    """
    import torch

    from feedback_nlp.encoders import SentenceTransformerEncoder

    settings = settings or FinetuneSettings()
    if settings.objective not in ("classify", "contrastive"):
        raise InvalidInputError(f"finetune_objective must be 'classify' or 'contrastive', not {settings.objective!r}")
    if len(texts) < 2:
        raise InvalidInputError("fine-tuning needs at least 2 labelled texts")
    torch.manual_seed(settings.seed)
    st = SentenceTransformerEncoder(model, device="cuda" if torch.cuda.is_available() else "cpu").load()
    saved_length = st.max_seq_length
    st.max_seq_length = min(int(saved_length or settings.max_seq_length), settings.max_seq_length)
    # Loading an encoder for inference pins torch to one thread per call; training wants every core.
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    st.train()
    try:
        if settings.objective == "classify":
            _train_classify(st, list(texts), list(labels), settings, log, progress, weights)
        else:
            _train_contrastive(st, list(texts), list(labels), settings, log, progress)
    finally:
        st.eval()
        st.max_seq_length = saved_length
        torch.set_num_threads(threads)
    output = Path(output)
    st.save(str(output))
    # sentence-transformers copies the base model's card, which no longer describes these weights.
    (output / "README.md").write_text(encoder_card(model, len(texts), settings), encoding="utf-8")
    return output


def encoder_card(base: str, n_texts: int, settings: FinetuneSettings) -> str:
    return (
        "# Fine-tuned sentence encoder (feedback-nlp)\n\n"
        f"Base model: `{base}` (all-MiniLM-L6-v2 for the default, Apache-2.0, by the sentence-transformers\n"
        "project). Fine-tuned by `feedback-nlp train --finetune` "
        f"(objective `{settings.objective}`, {settings.epochs} epoch(s), learning rate {settings.learning_rate:g},\n"
        f"batch {settings.batch_size}) on {n_texts:,} labelled survey comments. It is one part of a feedback-nlp\n"
        "model folder and is loaded through it (`feedback_nlp.load_model`); the folder's manifest holds\n"
        "the sha256 of every file here.\n"
    )


def _loop(st, params, steps: int, settings: FinetuneSettings, progress: bool, desc: str):
    """Optimizer, schedule (linear warm-up, then linear decay) and progress bar; yields a step function."""
    import torch

    optimizer = torch.optim.AdamW(params)
    warm = max(1, int(steps * settings.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit=" steps", desc=desc, dynamic_ncols=True, mininterval=1.0)

    def step(value):
        value.backward()
        torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value.item():.4f}", refresh=False)

    return step, bar


def _features(st, batch_texts):
    tokenize = getattr(st, "preprocess", None) or st.tokenize
    return {k: (v.to(st.device) if hasattr(v, "to") else v) for k, v in tokenize(batch_texts).items()}


def _train_classify(st, texts, labels, settings: FinetuneSettings, log, progress: bool, weights=None) -> None:
    import torch

    targets = classify_targets(labels)
    single = isinstance(targets, list)
    dim = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
    if single:
        classes = targets
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([index[str(label)] for label in labels])
        layer = torch.nn.Linear(dim, len(classes))
    else:
        themes, polar, theme_y, polarity_y = targets
        y = torch.tensor(theme_y, dtype=torch.float32)
        y_pol = torch.tensor(polarity_y, dtype=torch.float32).reshape(len(texts), len(polar))
        layer = torch.nn.Linear(dim, len(themes) + len(polar))
    layer.to(st.device)
    w = torch.ones(len(texts)) if weights is None else torch.tensor(list(weights), dtype=torch.float32)
    # The pooled embedding is unit length: a scale lets the logits reach useful sizes.
    scale = torch.nn.Parameter(torch.tensor(10.0, device=st.device))
    tokenizer = st.tokenizer
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=True,
                                               max_length=st.max_seq_length)["input_ids"]]
    rng = random.Random(settings.seed)
    per_epoch = (len(texts) + settings.batch_size - 1) // settings.batch_size
    steps = settings.epochs * per_epoch
    log(f"fine-tuning {len(texts):,} texts against their labels: {settings.epochs} epoch(s), "
        f"{steps:,} steps of {settings.batch_size}, lr {settings.learning_rate:g}")
    params = [
        {"params": list(st.parameters()), "lr": settings.learning_rate, "weight_decay": 0.01},
        {"params": list(layer.parameters()) + [scale], "lr": settings.head_learning_rate, "weight_decay": 0.0},
    ]
    step, bar = _loop(st, params, steps, settings, progress, "fine-tune")
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    try:
        for _ in range(settings.epochs):
            for batch in sortish_batches(lengths, settings.batch_size, rng):
                embedding = st(_features(st, [texts[i] for i in batch]))["sentence_embedding"]
                logits = layer(embedding * scale)
                bw = w[batch].to(st.device)
                if single:
                    value = (torch.nn.functional.cross_entropy(logits, y[batch].to(st.device), reduction="none") * bw).sum() / bw.sum()
                else:
                    k = len(themes)
                    value = (bce(logits[:, :k], y[batch].to(st.device)).mean(dim=1) * bw).sum() / bw.sum()
                    if polar:
                        known = y_pol[batch].to(st.device)
                        mask = (known >= 0).float() * bw[:, None]
                        if mask.sum() > 0:
                            pol = bce(logits[:, k:], known.clamp(min=0)) * mask
                            value = value + pol.sum() / mask.sum()
                step(value)
    finally:
        if bar is not None:
            bar.close()


def _train_contrastive(st, texts, labels, settings: FinetuneSettings, log, progress: bool) -> None:
    import torch

    loss = _losses().CosineSimilarityLoss(st)
    tags = tag_sets(labels)
    pairs = make_pairs(tags, settings.pairs_per_example, settings.seed)
    steps = settings.epochs * ((len(pairs) + settings.batch_size - 1) // settings.batch_size)
    log(f"fine-tuning on {len(pairs):,} pairs from {len(texts):,} texts: "
        f"{settings.epochs} epoch(s), {steps:,} steps of {settings.batch_size}")
    step, bar = _loop(st, [{"params": list(st.parameters()), "lr": settings.learning_rate}], steps, settings,
                      progress, "fine-tune")
    rng = random.Random(settings.seed)
    try:
        for _ in range(settings.epochs):
            order = list(pairs)
            rng.shuffle(order)
            for start in range(0, len(order), settings.batch_size):
                batch = order[start : start + settings.batch_size]
                features = [_features(st, [texts[p[side]] for p in batch]) for side in (0, 1)]
                step(loss(features, torch.tensor([p[2] for p in batch], dtype=torch.float32, device=st.device)))
    finally:
        if bar is not None:
            bar.close()
