"""feedback_nlp.runtime: calls cut by length, spread over workers, run side by side."""

import threading

import numpy as np
import pytest

from feedback_nlp.runtime import CallPool, length_batches, spread_calls


def test_length_batches_cut_mixed_lengths_where_padding_costs_more_than_a_call():
    lengths = [3, 30, 4, 3, 28, 5, 4, 3, 29, 4]
    calls = length_batches(lengths, max_rows=64, call_cost=8)
    rows = np.concatenate(calls)
    assert sorted(rows.tolist()) == list(range(len(lengths)))  # every row once
    widths = [[lengths[r] for r in call] for call in calls]
    assert all(w == sorted(w, reverse=True) for w in widths)  # longest first: a call pads to its first row
    assert widths == [[30, 29, 28], [5, 4, 4, 4, 3, 3, 3]]
    padded = sum(len(w) * w[0] for w in widths)
    assert padded < 0.5 * len(lengths) * max(lengths)  # one call would pad every row to 30
    # A call costing more than the padding saved keeps them together; max_rows is respected.
    assert len(length_batches(lengths, max_rows=64, call_cost=10_000)) == 1
    assert sorted(len(c) for c in length_batches([7] * 10, max_rows=4, call_cost=8)) == [2, 4, 4]
    assert length_batches([], max_rows=4, call_cost=8) == []


def test_spread_calls_gives_each_worker_a_call_and_keeps_each_sorted():
    lengths = np.array([9, 3, 7, 5, 8])
    (one,) = length_batches(lengths, max_rows=64, call_cost=10_000)
    calls = spread_calls([one], 2)
    assert sorted(np.concatenate(calls).tolist()) == [0, 1, 2, 3, 4]  # every row once
    assert [lengths[c].tolist() for c in calls] == [[9, 7, 3], [8, 5]]  # each half still longest first
    assert len(spread_calls([one], 8)) == 5  # no more calls than rows
    assert [c.tolist() for c in spread_calls([np.array([4])], 2)] == [[4]]
    assert spread_calls([], 2) == []
    assert spread_calls(calls, 1) == calls


def test_call_pool_runs_calls_side_by_side_and_waits_for_all():
    both_running = threading.Barrier(2, timeout=5)  # two calls must be in flight at once to pass
    done = []

    def call(rows):
        both_running.wait()
        done.append(rows.tolist())

    CallPool(2, "test").map(call, [np.array([0]), np.array([1])])
    assert sorted(done) == [[0], [1]]
    with pytest.raises(ValueError):  # a failing call is raised to the caller
        CallPool(2, "test").map(lambda rows: int("x"), [np.array([0]), np.array([1])])


def test_warm_up_loads_an_encoder_once_and_leaves_the_model_untouched(fitted):
    from feedback_nlp.runtime import warm_up

    class Counting:
        dim = 4
        loads = 0

        def load(self):
            Counting.loads += 1

        def encode(self, texts, *, batch_size=64):
            import numpy as np

            return np.ones((len(texts), 4), np.float32) / 2

        def spec(self):
            return {"kind": "counting"}

    encoder = Counting()
    warm_up(encoder)
    warm_up(encoder)
    assert Counting.loads == 1
    before = dict(vars(fitted))
    fitted.predict_proba(["still broken"])  # predicting sets nothing on the estimator
    assert vars(fitted).keys() == before.keys()


def test_a_call_pool_survives_pickling_with_its_threads_made_again():
    import pickle

    pool = CallPool(2, "test-pool")
    assert pool.map(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]  # its threads have started
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.workers == 2 and copy.map(lambda x: x + 1, [1, 2]) == [2, 3]
