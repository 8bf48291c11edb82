"""feedback_nlp.heads: the fitted heads as JSON values and plain arrays."""

import json

import numpy as np


def test_heads_round_trip_through_arrays_and_json(fitted):
    from feedback_nlp.heads import pack, unpack

    meta, arrays = pack(fitted.fitted_state())
    json.dumps(meta)  # JSON values only
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    again = unpack(json.loads(json.dumps(meta)), arrays)
    texts = ["quick and friendly", "still broken, transferred twice"]
    before = fitted.predict_proba(texts)
    fitted.set_fitted_state(again)
    assert np.array_equal(fitted.predict_proba(texts), before)
