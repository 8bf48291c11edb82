"""Export a model folder's sentence-transformers encoder to ONNX (fp32 or int8) and check it.

Exporting needs torch and, for int8, the ``onnx`` package (``pip install 'feedback-nlp[onnx]'``);
running an export needs neither (see ``feedback_nlp.onnx_encoder``). The export is written
into the model folder and listed in its manifest, so the folder stays verifiable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .artifacts import amend_model, runtime_encoder_spec, verify_model
from .encoders import load_encoder, transformer_part
from .errors import EncoderError
from .onnx_encoder import CONFIG_FILE, FP32_FILE, INT8_FILE, ONNX_DIR, TOKENIZER_FILE, OnnxEncoder

OPSET = 17
MIN_FP32_COSINE = 0.999
MIN_INT8_MEAN_COSINE = 0.98  # measured ~0.99; far below means the quantised graph is broken

# Texts the export is checked on: short, long (past the maximum length), odd characters.
CHECK_TEXTS = [
    "",
    "ok",
    "Thanks!",
    "great job",
    "Quick fix but the technician was rude.",
    "Waited on hold for 45 minutes.",
    "I was transferred between three different teams and had to explain my problem every time.",
    "They closed the ticket but my laptop still won't connect to the VPN.",
    "She knew exactly what was wrong and explained it clearly.",
    "Très bien, merci — problème résolu en 5 min 👍",
    "PASSWORD RESET!!! took 3 days???",
    "n/a",
    "The agent was friendly. The fix did not last. I had to call back twice and nobody knew the history.",
    " ".join(["The printer on the third floor keeps jamming and nobody seems to care about it."] * 30),
    "wifi drops every hour since the upgrade, ticket #48213 re-opened, still waiting",
    "Excellent service from start to finish, very professional and knowledgeable staff.",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _load_sentence_transformer(spec: dict):
    if spec.get("kind", "sentence-transformers") != "sentence-transformers":
        raise EncoderError(
            f"only sentence-transformers encoders can be exported to ONNX; this model's encoder is {json.dumps(spec)}"
        )
    encoder = load_encoder({"kind": "sentence-transformers", **spec})
    encoder.device = "cpu"
    st = encoder.load()
    kinds = [type(m).__name__ for m in st]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise EncoderError(f"cannot export encoder modules {kinds}: only Transformer + Pooling [+ Normalize] is supported")
    pooling = st[1].get_config_dict()
    if not (pooling.get("pooling_mode") == "mean" or pooling.get("pooling_mode_mean_tokens")):
        raise EncoderError(f"cannot export pooling {pooling}: only mean pooling is supported")
    return encoder, st


def _export_graph(st, target: Path, opset: int) -> list[str]:
    """torch.onnx.export of transformer + masked mean pooling + L2 normalisation; returns input names."""
    import torch

    transformer = st[0].auto_model.eval()

    class Body(torch.nn.Module):
        def __init__(self, model, names):
            super().__init__()
            self.model = model
            self.names = names

        def forward(self, *inputs):
            kwargs = dict(zip(self.names, inputs))
            hidden = self.model(**kwargs).last_hidden_state
            mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    # The example batch must contain padding, or the attention mask can be traced away.
    example = st.tokenizer(["a short one", "a somewhat longer example text, with padding after the first"],
                           padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in example]
    body = Body(transformer, names).eval()
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the result is checked below
        torch.onnx.export(
            body,
            tuple(example[n] for n in names),
            str(target),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "sentence_embedding": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles BERT-style models
        )
    return names


def _quantize(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EncoderError(f"int8 quantisation needs the onnx package ({exc}): pip install onnx") from None
    # Per-channel scales: per-tensor ones gave cosine 0.94 mean / 0.76 min to fp32 on
    # MiniLM; per-channel 0.99 / 0.96 at the same size.
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    import onnx

    onnx.save(_per_token_activations(onnx.load(str(target))), str(target))


def _per_token_activations(model):
    """Give every quantised activation one scale per token instead of one per call.

    ``quantize_dynamic`` quantises each matrix product's input with a single scale computed
    over the whole call (every text and padding position in it), so a comment's vector
    depended on which comments shared its call: on the 858 test comments, classified alone
    or together, 41 got a different set of themes and scores moved by up to 0.23. Here each
    ``DynamicQuantizeLinear`` becomes a per-token symmetric quantisation (scale = the
    token's max |x| / 127, zero point 128) and each of its products a
    ``MatMulIntegerToFloat`` whose output rows are multiplied by their token's scale. A token's
    result then depends on that token only. Agreement with fp32 goes up (per-token scales
    fit better); the extra element-wise passes cost ~15-25% of the int8 graph's time.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    consumers: dict[str, list] = {}
    producer = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    one, zero_point, levels, eps = "pt/one", "pt/zero_point", "pt/127", "pt/eps"
    replaced: dict[int, list] = {}
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            continue
        x, (xq, x_scale, _) = node.input[0], node.output
        p = f"pt/{x}"
        scale = f"{p}/scale"
        replaced[id(node)] = [
            helper.make_node("Abs", [x], [f"{p}/abs"]),
            helper.make_node("ReduceMax", [f"{p}/abs"], [f"{p}/amax"], axes=[-1], keepdims=1),
            helper.make_node("Max", [f"{p}/amax", eps], [f"{p}/amax_safe"]),
            helper.make_node("Div", [f"{p}/amax_safe", levels], [scale]),
            helper.make_node("Div", [levels, f"{p}/amax_safe"], [f"{p}/inverse"]),
            helper.make_node("Mul", [x, f"{p}/inverse"], [f"{p}/scaled"]),
            helper.make_node("QuantizeLinear", [f"{p}/scaled", one, zero_point], [xq]),
        ]
        for matmul in consumers[xq]:
            # quantize_dynamic's pattern: MatMulInteger -> Cast -> Mul(x_scale * w_scale)
            (cast,) = consumers.get(matmul.output[0], [None])
            (mul,) = consumers.get(cast.output[0], [None]) if cast is not None else [None]
            if matmul.op_type != "MatMulInteger" or cast is None or cast.op_type != "Cast" or mul is None or mul.op_type != "Mul":
                raise EncoderError(f"unexpected int8 graph around {matmul.name or matmul.op_type}; export without --int8")
            both = producer[mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]]
            w_scale = both.input[1] if both.input[0] == x_scale else both.input[0]
            out = mul.output[0]
            replaced[id(matmul)] = [
                helper.make_node("MatMulIntegerToFloat", [xq, matmul.input[1], one, w_scale, zero_point, matmul.input[3]],
                                 [f"{out}/per_token"], domain="com.microsoft"),
                helper.make_node("Mul", [f"{out}/per_token", scale], [out]),
            ]
            dropped.update((id(cast), id(mul), id(both)))
    nodes = [new for node in graph.node if id(node) not in dropped for new in replaced.get(id(node), [node])]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend([
        numpy_helper.from_array(np.array(1.0, np.float32), one),
        numpy_helper.from_array(np.array(128, np.uint8), zero_point),
        numpy_helper.from_array(np.array(127.0, np.float32), levels),
        numpy_helper.from_array(np.array(1e-8, np.float32), eps),
    ])
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def export_onnx(model_dir: str | Path, out_dir: str | Path | None = None, int8: bool = False, *,
                make_default: bool = False, texts: Sequence[str] | None = None, log=None) -> dict:
    """Export the model folder's sentence-transformers encoder to ONNX and check it.

    Writes ``model.onnx`` (or, with ``int8``, ``model.int8.onnx``), ``tokenizer.json`` and
    ``encoder.json`` to ``out_dir`` (default ``<model_dir>/onnx``). When ``out_dir`` is inside
    the model folder the manifest gains an ``"onnx"`` entry (the fast path's encoder spec)
    and the sha256 of the new files; ``make_default`` also sets the folder's ``"runtime"``
    to ``"onnx"``. The export's embeddings are compared with the torch encoder's on
    :data:`CHECK_TEXTS` (plus ``texts``): fp32 must reach cosine >= 0.999 on every text.
    Returns a report: files, cosine min/mean, sizes.
    """
    say = log or (lambda message: None)
    model_dir = Path(model_dir)
    manifest = verify_model(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir / ONNX_DIR
    try:
        relative = out_dir.resolve().relative_to(model_dir.resolve())
    except ValueError:
        relative = None  # a stand-alone export: the manifest is left alone
    source, rebuild = transformer_part(manifest["encoder"])
    say(f"loading encoder {json.dumps(source)}")
    encoder, st = _load_sentence_transformer(transformer_part(runtime_encoder_spec(manifest, model_dir, "torch"))[0])
    check = list(CHECK_TEXTS) + list(texts or [])
    reference = encoder.encode(check, batch_size=8)

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        say("exporting with torch.onnx.export")
        inputs = _export_graph(st, tmp / FP32_FILE, OPSET)
        tokenizer = type(st.tokenizer.backend_tokenizer).from_str(st.tokenizer.backend_tokenizer.to_str())
        tokenizer.enable_truncation(int(st.max_seq_length))
        tokenizer.no_padding()
        tokenizer.save(str(tmp / TOKENIZER_FILE))
        pad_id = st.tokenizer.pad_token_id
        config = {
            "dim": int(reference.shape[1]),
            "max_length": int(st.max_seq_length),
            "pooling": "mean, L2-normalised, inside the graph",
            "inputs": inputs,
            "pad_id": int(pad_id if pad_id is not None else 0),
            "opset": OPSET,
            "source": source,
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        fp32 = _cosines(OnnxEncoder(tmp).encode(check, batch_size=4), reference)
        agreement = {"texts": len(check), "fp32_cosine_min": round(float(fp32.min()), 6),
                     "fp32_cosine_mean": round(float(fp32.mean()), 6)}
        say(f"fp32 vs torch: cosine min {fp32.min():.6f}, mean {fp32.mean():.6f} on {len(check)} texts")
        if fp32.min() < MIN_FP32_COSINE:
            worst = check[int(np.argmin(fp32))]
            raise EncoderError(
                f"the ONNX export disagrees with the torch encoder: cosine {fp32.min():.4f} < {MIN_FP32_COSINE} "
                f"on {worst[:80]!r}; nothing was written to {out_dir}"
            )
        written = [TOKENIZER_FILE, CONFIG_FILE]
        if int8:
            say("quantising to int8 (weights per channel, activations per token)")
            _quantize(tmp / FP32_FILE, tmp / INT8_FILE)
            q = _cosines(OnnxEncoder(tmp, quantized=True).encode(check, batch_size=4), reference)
            agreement.update(int8_cosine_min=round(float(q.min()), 6), int8_cosine_mean=round(float(q.mean()), 6))
            say(f"int8 vs torch: cosine min {q.min():.6f}, mean {q.mean():.6f}")
            if q.mean() < MIN_INT8_MEAN_COSINE:
                raise EncoderError(
                    f"the int8 export disagrees with the torch encoder: mean cosine {q.mean():.4f} < "
                    f"{MIN_INT8_MEAN_COSINE}; export without --int8"
                )
            written.append(INT8_FILE)
        else:
            written.append(FP32_FILE)
        for name in written:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report = {
        "path": str(out_dir),
        "file": str(out_dir / written[-1]),
        "quantized": bool(int8),
        "size_mb": round((out_dir / written[-1]).stat().st_size / 2**20, 1),
        "agreement": agreement,
        "manifest_updated": relative is not None,
    }
    if relative is not None:
        entry = {"kind": "onnx", "path": relative.as_posix(), "quantized": bool(int8), "source": source,
                 "agreement": agreement}
        updates = {"onnx": rebuild(entry)}
        if make_default:
            updates["runtime"] = "onnx"
        amend_model(model_dir, updates, files=[(relative / name).as_posix() for name in written])
    return report
