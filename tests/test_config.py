"""FitConfig / AmortizedConfig: validation, deprecated spellings, and what is generated from the fields."""
import dataclasses
import warnings

import numpy as np
import pytest

import sparsolve
from sparsolve.config import AmortizedConfig, FitConfig, field_docs


def test_every_field_has_a_docstring():
    for cls in (FitConfig, AmortizedConfig):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert len(docs.get(f.name, "")) > 10, (cls.__name__, f.name)


@pytest.mark.parametrize("name", ["lr", "beta", "forget", "tol", "alpha"])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_numbers_are_refused(name, bad):
    kw = {"n_atoms": 8, "alpha": 0.1, name: bad}
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        FitConfig(**kw)


@pytest.mark.parametrize("kw, match", [
    ({"solver": "lars"}, "solver='lars' is not known"),
    ({"device": "tpu"}, "device='tpu' is not known"),
    ({"batch_size": 0}, "batch_size must be ≥ 1"),
    ({"checkpoint_every": 0}, "checkpoint_every must be ≥ 1"),
    ({"forget": -1.0}, "forget must be a finite number ≥ 0"),
    ({"solver_options": {"gamma": 0.5}}, r"\['gamma'\] need a named solver.*settings of fit, those are"),
])
def test_bad_settings_name_the_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        FitConfig(8, 0.1, **kw)


def test_fit_refuses_infinite_lr_before_any_work():
    X = np.ones((10, 4))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        sparsolve.fit(X, 2, 0.1, lr=float("inf"), progress=False)


def test_resolved_fills_the_data_dependent_defaults():
    c = FitConfig(8, 0.1).resolved(1000)
    assert (c.batch_size, c.n_epochs, c.dead_after, c.beta) == (256, 1, 512, 0.1)
    m = FitConfig(8, 0.1, update="mod").resolved(1000)
    assert (m.batch_size, m.n_epochs) == (1000, 30)


def test_resume_mismatch_ignores_how_long_and_where():
    a = FitConfig(8, 0.1, max_steps=10).resolved(1000)
    b = dataclasses.replace(a, max_steps=20, checkpoint_every=5, n_epochs=3)
    assert a.resume_mismatch(dataclasses.asdict(b)) == []
    assert dataclasses.replace(a, forget=2.0).resume_mismatch(dataclasses.asdict(a)) == ["forget"]


def test_fit_device_auto_is_deprecated():
    with pytest.warns(DeprecationWarning, match="device=None"):
        c = FitConfig(8, 0.1, device="auto")
    assert c.device is None


def test_fit_amortized_norm_penalty_is_deprecated():
    with pytest.warns(DeprecationWarning, match="inverse_penalty"):
        c = AmortizedConfig(1, 0.1, mode="autoencoder", norm="penalty")
    assert c.norm == "inverse_penalty"


def test_the_new_spellings_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FitConfig(8, 0.1, device=None, norm="penalty")
        AmortizedConfig(1, 0.1, mode="autoencoder", norm="inverse_penalty", positive=False)


def test_one_default_solver_everywhere():
    from sparsolve.cli import _parser
    from sparsolve.estimator import DictionaryLearning

    default = FitConfig(8, 0.1).solver
    assert DictionaryLearning().get_params()["solver"] == default
    assert _parser().parse_args(["fit"]).solver == default
    import inspect

    assert "solver" not in inspect.signature(sparsolve.fit).parameters  # fit takes it from FitConfig


def test_cli_flags_and_estimator_parameters_are_generated_from_the_fields():
    from sparsolve.cli import _parser
    from sparsolve.estimator import DictionaryLearning

    fit_help = _parser()._subparsers._group_actions[0].choices["fit"].format_help()
    params = DictionaryLearning().get_params()
    docs = field_docs(FitConfig)
    for f in dataclasses.fields(FitConfig):
        flag = "--solver-option" if f.name == "solver_options" else "--" + f.name.replace("_", "-")
        assert flag in fit_help, f.name
        if f.name not in ("device", "checkpoint_every", "seed", "n_atoms"):
            assert f.name in params, f.name
    assert "random_state" in params and "n_components" in params  # scikit-learn's names
    assert docs["forget"].split()[0] in fit_help


@pytest.mark.parametrize("cls, name", [(FitConfig, f.name) for f in dataclasses.fields(FitConfig) if f.type == "bool"]
                         + [(AmortizedConfig, f.name) for f in dataclasses.fields(AmortizedConfig)
                            if f.type == "bool"])
@pytest.mark.parametrize("bad", ["no", "false", 0, 1, None])
def test_every_true_or_false_setting_refuses_anything_else(cls, name, bad):
    """positive="no" once became True; every boolean setting now says what it wants instead."""
    args = (8, 0.1) if cls is FitConfig else (1, 0.1)
    with pytest.raises(TypeError, match=f"{name} must be True or False, got {bad!r}"):
        cls(*args, **{name: bad})


def test_the_boolean_settings_are_the_ones_expected():
    booleans = {f.name for cls in (FitConfig, AmortizedConfig) for f in dataclasses.fields(cls) if f.type == "bool"}
    assert booleans == {"positive", "shuffle", "resample_dead", "center", "learn_gamma", "tied", "accelerate"}


def test_the_choices_are_the_registries():
    from sparsolve.inference import REGISTRY
    from sparsolve.rules import NORM_RULES, UPDATE_RULES

    assert FitConfig.CHOICES["solver"] == ("auto", *REGISTRY)
    assert FitConfig.CHOICES["update"] == tuple(UPDATE_RULES)
    assert FitConfig.CHOICES["norm"] == tuple(NORM_RULES)
    for name in ("update", "norm"):
        with pytest.raises(ValueError, match=f"{name}='nope' is not known; choose one of"):
            FitConfig(8, 0.1, **{name: "nope"})
