import json
import os
from pathlib import Path

import pytest

from feedback_nlp import HashingEncoder, ThemeClassifier, save_model

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_rows():
    return read_jsonl(DATA / "tiny.jsonl")


@pytest.fixture(scope="session")
def fake_encoder():
    return HashingEncoder(dim=256)


@pytest.fixture(scope="session")
def _fitted(tiny_rows, fake_encoder):
    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    return ThemeClassifier(encoder=fake_encoder, cv=3, C=10.0).fit(texts, labels)


@pytest.fixture
def fitted(_fitted):
    """A fitted multi-label model on the tiny corpus with the fake encoder (cheap copy)."""
    import copy

    return copy.deepcopy(_fitted)


@pytest.fixture(scope="session")
def _model_dir(_fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    save_model(_fitted, path, name="tiny")
    return path


@pytest.fixture
def model_dir(_model_dir, tmp_path):
    """A saved model folder (a fresh copy per test, safe to tamper with)."""
    import shutil

    target = tmp_path / "model"
    shutil.copytree(_model_dir, target)
    return target


def assert_classifies_without(model_dir, modules=("sklearn", "scipy", "pandas", "torch")):
    """Load ``model_dir`` and classify in a fresh process; fail if any of ``modules`` got imported.

    torch is checked where it is not installed (the base install, `pip install .`): where it is,
    spaCy's thinc imports it with spaCy, which the library no longer hides (.ci/run checks the
    base install answers the same without torch).
    """
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torch") is not None:
        modules = tuple(m for m in modules if m != "torch")

    code = (
        "import sys; from feedback_nlp import load_model; "
        f"r = load_model({str(model_dir)!r}).classify(['slow and rude', 'thanks']); assert len(r) == 2; "
        f"heavy = [m for m in {tuple(modules)!r} if m in sys.modules]; assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# Headless Chromium for the browser tests (Debian's, driven by Playwright's Python package).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium chromium-driver; .ci/run does)")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
