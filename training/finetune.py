"""Contrastive fine-tuning of the sentence-transformers encoder (``train --finetune``).

SetFit-style: pairs of training comments are drawn, each with a target similarity, and
the encoder is trained so the cosine of the two embeddings approaches it
(``CosineSimilarityLoss``). Our labels are sets (themes, with polarity), so the target is
the Jaccard overlap of the two comments' tag sets: 1 for the same tags, 0 for none in
common, in between for partial overlap. Single-label data reduces to 1/0.

The heads are then fitted on the fine-tuned encoder as usual, and the encoder folder is
saved inside the model folder (``encoder/``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from feedback_nlp.errors import InvalidInputError


@dataclass
class FinetuneSettings:
    epochs: int = 1
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


def finetune_encoder(
    model: str,
    texts: Sequence[str],
    labels: Sequence,
    output: str | Path,
    settings: FinetuneSettings | None = None,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Fine-tune the sentence-transformers ``model`` (name or folder) on labelled texts; save it to ``output``."""
    import torch

    from feedback_nlp.encoders import SentenceTransformerEncoder

    settings = settings or FinetuneSettings()
    if len(texts) < 2:
        raise InvalidInputError("fine-tuning needs at least 2 labelled texts")
    torch.manual_seed(settings.seed)
    st = SentenceTransformerEncoder(model, device="cpu" if not torch.cuda.is_available() else None)._load()
    saved_length = st.max_seq_length
    st.max_seq_length = min(int(saved_length or settings.max_seq_length), settings.max_seq_length)
    loss = _losses().CosineSimilarityLoss(st)
    tokenize = getattr(st, "preprocess", None) or st.tokenize
    device = st.device

    tags = tag_sets(labels)
    pairs = make_pairs(tags, settings.pairs_per_example, settings.seed)
    steps = settings.epochs * ((len(pairs) + settings.batch_size - 1) // settings.batch_size)
    log(f"fine-tuning {model} on {len(pairs):,} pairs from {len(texts):,} texts: "
        f"{settings.epochs} epoch(s), {steps:,} steps of {settings.batch_size}")
    optimizer = torch.optim.AdamW(st.parameters(), lr=settings.learning_rate)
    warm = max(1, int(steps * settings.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit=" steps", desc="fine-tune", dynamic_ncols=True, mininterval=1.0)
    st.train()
    rng = random.Random(settings.seed)
    try:
        for _ in range(settings.epochs):
            order = list(pairs)
            rng.shuffle(order)
            for start in range(0, len(order), settings.batch_size):
                batch = order[start : start + settings.batch_size]
                features = [
                    {k: (v.to(device) if hasattr(v, "to") else v) for k, v in tokenize([texts[p[side]] for p in batch]).items()}
                    for side in (0, 1)
                ]
                value = loss(features, torch.tensor([p[2] for p in batch], dtype=torch.float32, device=device))
                value.backward()
                torch.nn.utils.clip_grad_norm_(st.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value.item():.4f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    st.eval()
    st.max_seq_length = saved_length
    output = Path(output)
    st.save(str(output))
    return output
