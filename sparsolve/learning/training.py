"""The training loop both trainers share: progress, checkpoints, callback, stop, Ctrl-C.

:func:`run` walks a trainer's steps -- an iterator that does one step per item and
yields ``(step, model_or_dictionary, record)`` -- and around each step:

* updates a tqdm bar (its postfix every ``postfix_every`` steps and at the last: the
  record's numbers are read to the host only then; with ``ready``, at the first record
  from then on that ``ready(record)`` accepts, so the bar itself never reads the device);
* calls ``save()`` every ``checkpoint_every`` steps and once at the end;
* calls ``callback(step, model_or_dictionary, record)``; False stops the training;
* with a checkpoint (or ``interruptible``), catches Ctrl-C and SIGTERM: the step under way
  finishes, the checkpoint is saved, and then KeyboardInterrupt (Ctrl-C) or SystemExit(143)
  (SIGTERM) ends the run, so the trainer can keep what the finished steps learned.  A second
  Ctrl-C interrupts at once (the last saved checkpoint stands).  A KeyboardInterrupt raised by
  the callback saves too.  Any other error leaves the last periodic checkpoint as it was.
"""
from __future__ import annotations

import contextlib
import signal
import threading


class _Stop:
    """Which signal asked the run to stop, if any."""

    def __init__(self):
        self.signum = None

    def handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: now
        self.signum = signum


@contextlib.contextmanager
def _deferred_signals(enabled):
    """Turn SIGINT and SIGTERM into a flag read between steps (main thread only: Python
    delivers signals there)."""
    stop = _Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(steps, *, total, initial, desc, progress, save=None, checkpoint_every=None, callback=None,
        postfix=None, to_host=dict, postfix_every=1, ready=None, interruptible=False):
    """Drive ``steps`` (see the module docstring); returns the last step number."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False)
    t, saved_at, due = initial, None, False
    try:
        with _deferred_signals(save is not None or interruptible) as stop:
            try:
                for t, obj, record in steps:
                    if bar is not None:
                        bar.update(1)
                        due = due or t % postfix_every == 0 or t == total
                        if postfix is not None and due and (ready is None or ready(record)):
                            bar.set_postfix(postfix(to_host(record)))
                            due = False
                    if save is not None and t % checkpoint_every == 0:
                        save()
                        saved_at = t
                    if stop.signum is not None:
                        break
                    if callback is not None and callback(t, obj, to_host(record)) is False:
                        break
            except KeyboardInterrupt:
                if save is not None and stop.signum is None and saved_at != t:
                    save()  # raised by the callback, after a completed step
                raise
            if save is not None and saved_at != t:
                save()
            if stop.signum == signal.SIGINT:
                raise KeyboardInterrupt
            if stop.signum == signal.SIGTERM:
                raise SystemExit(128 + signal.SIGTERM)
    finally:
        if bar is not None:
            bar.close()
    return t
