"""Solver options: ``--solver-option KEY=VALUE`` on the command line, typed as each solver
declares, and one check -- the solver's own -- for the command line and the Python API,
before any data is read."""
import re

import numpy as np
import pytest

import sparsolve
import sparsolve.data
from sparsolve import cli
from sparsolve.config import FitConfig
from sparsolve.data import natural_image_patches
from sparsolve.inference import REGISTRY
from sparsolve.inference.lca import LCA


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_option_declares_how_it_reads(name):
    cls = REGISTRY[name]
    assert set(cls.OPTION_TYPES) == set(cls.OPTIONS)


def _parsed(*argv):
    return cli._solver_options(cli._parser().parse_args(["fit", "X.npy", *argv]))


def test_values_are_read_as_the_solver_declares():
    options = _parsed("--solver", "lca", "--solver-option", "gamma=0.25", "--solver-option", "accelerate=false",
                      "--solver-option", "check_every=5", "--solver-option", "threshold=hard")
    assert options == {"gamma": 0.25, "accelerate": False, "check_every": 5, "threshold": "hard"}
    assert type(options["gamma"]) is float and type(options["check_every"]) is int
    assert _parsed("--solver", "fista", "--solver-option", "restart=No", "--solver-option", "fused=true") == {
        "restart": False, "fused": True}
    assert _parsed("--solver", "fista", "--solver-option", "fused=auto") == {"fused": "auto"}
    assert _parsed("--solver", "omp", "--solver-option", "n_nonzero_coefs=3") == {"n_nonzero_coefs": 3}
    # a key given twice: the last one, as for any flag
    assert _parsed("--solver", "lca", "--solver-option", "gamma=1", "--solver-option", "gamma=0.5") == {"gamma": 0.5}
    assert _parsed("--solver", "lca") == {}


@pytest.fixture
def reader_must_not_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the options were checked")

    monkeypatch.setattr(sparsolve.data, "read_matrix", refuse)


@pytest.mark.parametrize("argv, says", [
    (["--solver", "lca", "--solver-option", "gamma=-1"], r"gamma must be a finite number > 0, got -1\.0"),
    (["--solver", "lca", "--solver-option", "gama=0.1"], r"unknown option\(s\) \['gama'\] for solver='lca'"),
    (["--solver", "cd", "--solver-option", "gamma=0.1"], r"\['gamma'\] for solver='cd'.*it accepts \['form'\]"),
    (["--solver", "lca", "--solver-option", "gamma=abc"], r"gamma='abc' is not a number"),
    (["--solver", "lca", "--solver-option", "check_every=2.5"], r"check_every='2.5' is not an integer"),
    (["--solver", "lca", "--solver-option", "accelerate=maybe"], r"write accelerate=true or accelerate=false"),
    (["--solver", "lca", "--solver-option", "form=dense"], r"form='dense' is not known; choose one of"),
    (["--solver", "lca", "--positive", "--solver-option", "threshold=soft"], r"contradicts positive=True"),
    (["--solver", "lca", "--solver-option", "max_iter=5"], r"max_iter is a setting of fit.*--max-iter 5"),
    (["--solver", "lca", "--solver-option", "trace=print"], r"trace cannot be written as text"),
    (["--solver", "lca", "--solver-option", "gamma"], r"'gamma' is not KEY=VALUE"),
    (["--solver-option", "gamma=0.1"], r"need a named solver.*--solver lca"),
])
def test_bad_options_are_refused_before_the_data_is_read(tmp_path, capsys, reader_must_not_run, argv, says):
    with pytest.raises(SystemExit) as stop:
        cli.main(["fit", str(tmp_path / "absent.npy"), *argv, "--no-progress"])
    assert stop.value.code == 2  # argparse's usage error, not the missing file's
    err = capsys.readouterr().err
    assert "usage: sparsolve fit" in err and "argument --solver-option: " in err
    assert re.search(says, err), err
    if argv[:2] == ["--solver", "lca"] and "KEY=VALUE" not in says:  # the fix: what lca takes, typed
        assert "--solver lca takes --solver-option check_every=INT" in " ".join(err.split()), err
        assert "gamma=FLOAT" in err and "accelerate=true|false" in err


@pytest.mark.parametrize("kw, error, says", [
    ({"solver_options": {"gamma": -1}}, ValueError, r"gamma must be a finite number > 0, got -1"),
    ({"gamma": -1}, ValueError, r"gamma must be a finite number > 0, got -1"),  # a keyword fit routes to the solver
    ({"accelerate": "no"}, TypeError, r"accelerate must be True or False, got 'no'"),
    ({"gamma": "0.5"}, TypeError, r"gamma must be a finite number > 0, got str"),
    ({"check_every": 0}, ValueError, r"check_every must be ≥ 1"),
])
def test_fit_checks_option_values_before_any_work(kw, error, says):
    X = "/no/such/shard/directory"  # any look at the data would fail with another error
    with pytest.raises(error, match=says):
        sparsolve.fit(X, 8, 0.1, solver="lca", progress=False, **kw)


def test_the_solver_check_decides_for_the_cli_and_for_fit(monkeypatch, tmp_path, capsys, reader_must_not_run):
    def veto(cls, opts, positive, X, D):
        raise ValueError(f"vetoed gamma={opts['gamma']!r}")

    monkeypatch.setattr(LCA, "_check", classmethod(veto))
    with pytest.raises(ValueError, match="vetoed gamma=0.5"):
        FitConfig(8, 0.1, solver="lca", solver_options={"gamma": 0.5})
    with pytest.raises(SystemExit):
        cli.main(["fit", str(tmp_path / "absent.npy"), "--solver", "lca", "--solver-option", "gamma=0.5"])
    assert "vetoed gamma=0.5" in capsys.readouterr().err


def test_cli_options_reach_the_solver_and_the_saved_model(monkeypatch, tmp_path):
    data = tmp_path / "X.npy"
    np.save(data, natural_image_patches(8, 300, seed=4))
    seen = []
    init = LCA.init

    def spy(self, prob, Z0):
        seen.append((self.gamma, self.accelerate))
        return init(self, prob, Z0)

    monkeypatch.setattr(LCA, "init", spy)
    out = tmp_path / "m.npz"
    assert cli.main(["fit", str(data), "--atoms", "8", "--batch-size", "100", "--max-steps", "2", "--solver", "lca",
                     "--solver-option", "gamma=0.05", "--solver-option", "accelerate=false",
                     "--out", str(out), "--no-progress"]) == 0
    assert seen and set(seen) == {(0.05, False)}  # every step's encode ran with them
    model = sparsolve.load(out)
    assert model.solver_options == {"gamma": 0.05, "accelerate": False}
