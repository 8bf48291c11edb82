"""feedback-nlp: tag IT service-desk survey comments with themes, polarity and evidence.

    >>> from feedback_nlp import load_model
    >>> model = load_model()                      # the promoted or shipped default model
    >>> model.classify(["Quick fix but the tech was rude"])[0]["themes"]
"""

__version__ = "0.1.0"

from .artifacts import verify_model
from .batch import classify_file, classify_records
from .classifier import ThemeClassifier
from .data import read_labelled, write_labelled
from .encoders import Encoder, HashingEncoder, SentenceTransformerEncoder, load_encoder
from .export import export_onnx
from .errors import ArtifactError, EncoderError, FeedbackNLPError, InvalidInputError
from .metrics import evaluate
from .onnx_encoder import OnnxEncoder
from .registry import default_model_path, load_model, save_model
from .taxonomy import DEFAULT_TAXONOMY, Taxonomy, Theme
from .text import Sentence, normalize, redact, split_sentences

__all__ = [
    "__version__",
    "ArtifactError",
    "DEFAULT_TAXONOMY",
    "Encoder",
    "EncoderError",
    "FeedbackNLPError",
    "HashingEncoder",
    "InvalidInputError",
    "OnnxEncoder",
    "Sentence",
    "SentenceTransformerEncoder",
    "Taxonomy",
    "Theme",
    "ThemeClassifier",
    "classify_file",
    "classify_records",
    "default_model_path",
    "evaluate",
    "export_onnx",
    "load_encoder",
    "load_model",
    "normalize",
    "read_labelled",
    "redact",
    "save_model",
    "split_sentences",
    "verify_model",
    "write_labelled",
]
