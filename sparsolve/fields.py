"""What the typed settings share (config.py's FitConfig and AmortizedConfig): their fields'
docstrings, read from the source so that help text is written once; their defaults in words; the
refusal of anything but True or False for a boolean field; and the comparison a resume makes."""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import sys

from .checks import boolean


def listed(items) -> str:
    """"a, b or c"."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


@functools.cache
def field_docs(cls) -> dict:
    """{field name: its docstring} -- the string literal written right below each field, with each
    ``{NAME}`` in it replaced by the constant NAME of the module that defines ``cls``."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen build): help text is then empty
        return {}
    constants = vars(sys.modules[cls.__module__])
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split()).format_map(constants)
    return docs


def default_help(cls) -> dict:
    """{field name: its default in words}, for the fields that have one: the field's default, or
    where the default depends on the data or on another setting, how it is chosen, worded from the
    constants and registries that choose it (``cls.default_words()``)."""
    words = {f.name: "none" if f.default is None else str(f.default)
             for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return {**words, **cls.default_words()}


class Config:
    """The base of a settings dataclass."""

    #: Fields that may change between a checkpoint and the run that resumes it: they say
    #: how long to run and where, not what is learned.
    RUN_FIELDS: tuple = ()

    def check_booleans(self):
        """Every True-or-False field must be True or False: no truthiness, so "no" is refused rather
        than read as True."""
        for f in dataclasses.fields(self):
            if f.type in ("bool", bool):
                boolean(getattr(self, f.name), f.name)

    @staticmethod
    def default_words() -> dict:
        """{field: its default in words} where the field's own default does not say it (default_help)."""
        return {}

    def resume_mismatch(self, saved: dict) -> list:
        """The fields on which ``saved`` (an ``asdict`` of a config) differs from this one
        in a way a resume cannot accept."""
        return [k for k, v in dataclasses.asdict(self).items() if k not in self.RUN_FIELDS and saved.get(k) != v]
