"""feedback_nlp.encoders: load_encoder specs, the embedding cache, USE's tokenizers and MiniLM's calls.

The tests marked real_model load the real USE and all-MiniLM-L6-v2 weights.
"""

import pytest

from feedback_nlp.encoders import load_encoder
from feedback_nlp.onnx_encoder import OnnxEncoder

from test_onnx import make_toy_export


@pytest.fixture(scope="session")
def toy_export(tmp_path_factory):
    return make_toy_export(tmp_path_factory.mktemp("toy") / "onnx")


def test_spec_round_trips_through_load_encoder(toy_export):
    encoder = load_encoder({"kind": "onnx", "path": str(toy_export), "quantized": False})
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.spec() == {"kind": "onnx", "path": str(toy_export), "quantized": False}


def test_embedding_cache_is_reused_between_runs(tmp_path):
    import numpy as np

    from feedback_nlp.encoders import CachedEncoder, HashingEncoder

    calls = []

    class Counting(HashingEncoder):
        def encode(self, texts, batch_size=64):
            calls.append(len(texts))
            return super().encode(texts)

    first = CachedEncoder(Counting(), tmp_path / "cache")
    v1 = first.encode(["a b", "c d", "a b"])
    second = CachedEncoder(Counting(), tmp_path / "cache")
    v2 = second.encode(["c d", "e f", "a b"])
    assert calls == [2, 1]
    assert np.allclose(v1[1], v2[0]) and np.allclose(v1[0], v2[2])


@pytest.mark.real_model
def test_use_tokenizers_agree_and_specs_name_theirs():
    """Specs always name the tokenizer; format-1 specs without one are given "pure" by
    `feedback-nlp upgrade` (tests/test_upgrade.py), the one place old defaults live."""
    from feedback_nlp.encoders import load_encoder

    fast, pure = load_encoder("use"), load_encoder({"kind": "use", "tokenizer": "pure"})
    assert fast.spec() == {"kind": "use", "tokenizer": "sentencepiece"} and pure.spec() == {"kind": "use", "tokenizer": "pure"}
    assert load_encoder(fast.spec()).tokenizer == "sentencepiece"
    texts = ["The agent was quick and kind.", "Waited 3 days; nobody called back!", "Ticket INC0012345 closed, not fixed."]
    cosines = (fast.encode(texts) * pure.encode(texts)).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    # The reference library makes one unknown piece of a run of emoji; the pure port one per emoji.
    assert float((fast.encode(["Great 👍👍"]) * pure.encode(["Great 👍👍"])).sum()) < 0.9999


@pytest.mark.real_model
def test_use_weights_load_from_a_plain_copy_in_the_cache(tmp_path, monkeypatch):
    import numpy as np

    from feedback_nlp.encoders import load_encoder

    texts = ["The agent was quick and kind.", "Nobody called back."]
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))  # no cache possible: the package's own loading
    reference = load_encoder("use").encode(texts)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "rw"))
    first = load_encoder("use").encode(texts)  # writes the copy
    copies = list((tmp_path / "rw" / "feedback-nlp").glob("use-weights-*.npz"))
    assert len(copies) == 1
    second = load_encoder("use").encode(texts)  # reads it
    assert np.array_equal(first, reference) and np.array_equal(second, reference)


@pytest.mark.real_model
def test_minilm_encoder_gives_the_library_s_own_vectors():
    """The torch encoder is SentenceTransformer.encode (it sorts by length itself); the speed
    tricks belong to the ONNX runtime (feedback_nlp.runtime)."""
    import numpy as np

    from feedback_nlp.encoders import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder()
    st = encoder.load()
    texts = ["ok", "Thanks!", "The agent fixed my VPN in ten minutes and explained what had gone wrong with the certificate.",
             "slow", "Transferred three times before anyone knew what a docking station was, and then it was closed unsolved.",
             "great job", "Rude on the phone."] * 3
    ours = encoder.encode(texts)
    theirs = st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and np.allclose(ours, theirs, atol=1e-5)
