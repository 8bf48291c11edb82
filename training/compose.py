"""Make a model folder from one folder's main engine and another folder's language engines.

    python -m training.compose --main models/default --engines-from /tmp/retrained -o /tmp/composed

Retraining the language engines (new German or Polish comments) need not touch the English
engine: the result keeps ``--main``'s encoder, heads, thresholds, metrics and card exactly,
and takes every engine under ``--engines-from``'s ``engines/``. The main engine answers the
languages given by ``--main-languages`` (default: English). Export ONNX afterwards
(``feedback-nlp export OUT --onnx --int8 --make-default``) as after any training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from feedback_nlp import load_model, save_model
from feedback_nlp.errors import InvalidInputError
from feedback_nlp.router import Engine, LanguageRouter

from .pipeline import TRAINING_DATA


def compose(main: str | Path, engines_from: str | Path, output: str | Path, main_languages=("en",), name=None) -> Path:
    base = load_model(main, runtime="torch")
    base = base.main if isinstance(base, LanguageRouter) else base
    donor = load_model(engines_from, runtime="torch")
    if not isinstance(donor, LanguageRouter):
        raise InvalidInputError(f"{engines_from}: has no engines to take")
    base.languages = list(main_languages)
    router = LanguageRouter([Engine("main", base), *donor.engines[1:]])
    # The donor's training data holds every row of both (with its language): what --base retraining reads.
    data = Path(engines_from) / TRAINING_DATA
    extra = {TRAINING_DATA: data.read_bytes()} if data.is_file() else None
    return save_model(router, output, name=name or base.manifest_.get("name"), extra_files=extra)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--main", required=True, type=Path)
    ap.add_argument("--engines-from", required=True, type=Path)
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--main-languages", default="en")
    args = ap.parse_args(argv)
    out = compose(args.main, args.engines_from, args.output, [c.strip() for c in args.main_languages.split(",")])
    print(f"model written to {out}")


if __name__ == "__main__":
    main()
