"""learning/training.py: the loop both trainers share."""
import pytest

from sparsolve.learning import training


def _steps(n, log):
    for t in range(1, n + 1):
        log.append(t)
        yield t, "model", {"loss": float(t)}


def test_saves_every_k_and_at_the_end_and_stops_on_false():
    log, saves = [], []
    last = training.run(_steps(10, log), total=10, initial=0, desc="t", progress=False,
                        save=lambda: saves.append(log[-1]), checkpoint_every=3,
                        callback=lambda t, m, r: t < 7)
    assert last == 7 and log == list(range(1, 8))
    assert saves == [3, 6, 7]


def test_keyboard_interrupt_from_the_callback_saves_then_propagates(ctrl_c_at):
    log, saves = [], []
    with pytest.raises(KeyboardInterrupt):
        training.run(_steps(10, log), total=10, initial=0, desc="t", progress=False,
                     save=lambda: saves.append(log[-1]), checkpoint_every=100, callback=ctrl_c_at(2))
    assert saves == [2]


def test_other_errors_do_not_save():
    saves = []

    def boom(t, model, record):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        training.run(_steps(3, []), total=3, initial=0, desc="t", progress=False, save=lambda: saves.append(1),
                     checkpoint_every=100, callback=boom)
    assert saves == []
