"""One declaration per backend option: its type, default, range or choices, and who may change it.

Every backend's ``Options`` is a frozen dataclass deriving from ``Declared``; a field that needs more
than its type and default is declared with ``option()``:

    @dataclass(frozen=True)
    class Options(Declared, label="espeak"):
        voice: str = option("en-us", visitor=True, max_len=64)
        speed: int = option(160, min=80, max=450, visitor=True)    # words per minute
        threads: int = option(0, min=0, max=256)                   # the operator's: process-wide

That one declaration is read by everything that needs it: ``check`` validates a value's type and range
(NaN and infinity are never a number here) when the dataclass is made, before any work; ``overlay``
lets a visitor (the page, the API) change only the fields marked ``visitor`` (or ``listed``: among the
values the operator lists in ``visitors.choices``), never paths, URLs, keys, devices or process-wide
knobs; the Settings tab shows ``visible`` fields only, so a ``secret`` never reaches a page.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any

from app_modules.errors import BadInputError, TalkerError

OPERATOR = "operator"  # settings file and command line only
VISITOR = "visitor"  # anyone using the page or the API, within the declared range
LISTED = "listed"  # a visitor, but only among the values the operator lists (visitors.choices)
_KEY = "talker"
# the longest text a declared string takes (a path, a URL, a prompt), unless it says otherwise
MAX_TEXT = 4096


@dataclass(frozen=True)
class Spec:
    """What an option's declaration says besides its type and default."""

    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    access: str = OPERATOR
    secret: bool = False  # a key or password: never shown, never logged, never a visitor's
    max_len: int = MAX_TEXT
    step: float | None = None  # a slider's step, for the page
    help: str = ""  # one line for the page


def option(default: Any = MISSING, *, default_factory: Any = MISSING, min: float | None = None,  # noqa: A002
           max: float | None = None, choices: tuple | list | None = None, visitor: bool = False,  # noqa: A002
           listed: bool = False, secret: bool = False, max_len: int = MAX_TEXT, step: float | None = None,
           help: str = "") -> Any:  # noqa: A002
    """A dataclass field carrying its ``Spec``. ``visitor``: a visitor may set it (within range);
    ``listed``: only to a value the operator lists; ``secret``: never shown and never a visitor's."""
    if secret and (visitor or listed):
        raise ValueError("a secret option is the operator's only")
    access = LISTED if listed else VISITOR if visitor else OPERATOR
    spec = Spec(min, max, tuple(choices) if choices is not None else None, access, secret, max_len, step, help)
    return dataclasses.field(default=default, default_factory=default_factory, repr=not secret,
                             metadata={_KEY: spec})


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata.get(_KEY) or Spec()


class Declared:
    """Base of every backend's ``Options``: each field is checked against its declaration when the
    dataclass is made. ``label`` (the backend's name) prefixes the messages: ``espeak.speed must ...``.
    A subclass with its own ``__post_init__`` calls ``super().__post_init__()`` after normalising."""

    label = "options"

    def __init_subclass__(cls, label: str = "", **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if label:
            cls.label = label

    def __post_init__(self) -> None:
        check(self)


# ------------------------------------------------------------------------------------------ checking

def check(obj: Any) -> None:
    """Validate every field of a ``Declared`` dataclass instance (and normalise int -> float,
    list -> tuple); raises ``BadInputError`` naming the option, its valid range and the bad value."""
    cls = type(obj)
    hints = _hints(cls)
    label = getattr(cls, "label", "options")
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        fixed = check_value(f"{label}.{f.name}", hints.get(f.name, Any), spec_of(f), value)
        if fixed is not value:
            object.__setattr__(obj, f.name, fixed)


def check_value(name: str, tp: Any, spec: Spec, value: Any) -> Any:
    """``value`` as the declared type, or ``BadInputError``."""
    value = _typed(name, tp, spec, value)
    if value is None:
        return value
    if spec.choices is not None and value not in spec.choices:
        raise BadInputError(f"unknown {name} {value!r}; choices = {list(spec.choices)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = spec.min, spec.max
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise BadInputError(f"{name} must be {_range(lo, hi)}, got {value!r}")
    return value


def _listing(values) -> str:
    return ", ".join('""' if v == "" else str(v) for v in values)


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:g} and {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def _typed(name: str, tp: Any, spec: Spec, value: Any) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        errors = []
        for member in (m for m in members if m is not type(None)):
            try:
                return _typed(name, member, spec, value)
            except BadInputError as e:
                errors.append(str(e))
        raise BadInputError(errors[0] if len(errors) == 1 else
                            f"{name} must be {' or '.join(_kind(m) for m in members)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            raise BadInputError(f"{name} must be a list of {len(args)} values, got {value!r}")
        if args and args[-1] is not Ellipsis and len(value) != len(args):
            raise BadInputError(f"{name} must be a list of {len(args)} values, got {value!r}")
        each = [args[0]] * len(value) if args and args[-1] is Ellipsis else list(args)
        items = tuple(_typed(name, t, Spec(spec.min, spec.max), v) for t, v in zip(each, value, strict=True))
        return items if items != tuple(value) or not isinstance(value, tuple) else value
    if tp is bool:
        if not isinstance(value, bool):
            raise BadInputError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"{name} must be a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInputError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise BadInputError(f"{name} must be a finite number{' ' + _range(spec.min, spec.max) if spec.min is not None or spec.max is not None else ''}, got {value!r}")  # noqa: E501
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise BadInputError(f"{name} must be text, got {value!r}")
        if len(value) > spec.max_len:
            raise BadInputError(f"{name} is too long ({len(value)} characters; at most {spec.max_len})")
        if "\x00" in value:
            raise BadInputError(f"{name} must not contain NUL characters")
        return value
    return value  # a type this module does not know: the backend checks it


def _kind(tp: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            type(None): "empty (null)"}.get(tp, "a list" if typing.get_origin(tp) is tuple else str(tp))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:  # one class's annotations never change: resolve them once
        module = sys.modules.get(cls.__module__)
        _HINTS[cls] = typing.get_type_hints(cls, vars(module) if module else None)
    return _HINTS[cls]


# ------------------------------------------------------------------------------------------ building

def build(opt_cls: type, values: Mapping[str, Any] | None, owner: str = "") -> Any:
    """``opt_cls`` from a plain mapping (settings file, command line, page); unknown names are listed
    with the valid ones, command-line strings become the declared type, then ``check`` runs."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(opt_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BadInputError(f"unknown option(s) {unknown} for {owner or getattr(opt_cls, 'label', 'options')}; "
                            f"valid options = {sorted(fields)}")
    hints = _hints(opt_cls)
    try:
        return opt_cls(**{k: coerce(v, hints.get(k, Any), k) for k, v in values.items()})
    except TypeError as e:  # an Options class that is not a dataclass of these names
        raise TalkerError(f"bad options for {owner}: {e}") from e


def coerce(value: Any, tp: Any, name: str = "option") -> Any:
    """Command-line overrides arrive as strings; turn one into the field's declared scalar type."""
    if not isinstance(value, str):
        return value
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if value in ("", "None", "null") and type(None) in members:
        return None
    for number in (int, float):
        if number in members and str not in members:
            try:
                return number(value)
            except ValueError:
                raise BadInputError(f"option {name} wants a {number.__name__}, got {value!r}") from None
    if bool in members and str not in members:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


# ---------------------------------------------------------------------------------- visitor/operator

def visitor_fields(opt_cls: type) -> list[dataclasses.Field]:
    """The fields a visitor may change (``visitor`` or ``listed``), in declaration order."""
    return [f for f in dataclasses.fields(opt_cls) if spec_of(f).access != OPERATOR and not spec_of(f).secret]


def visible(opt_cls: type, values: Mapping[str, Any], allowed: Mapping[str, list] | None = None) -> dict[str, Any]:
    """What a page may show of ``values``: the visitor's fields (defaults filled in), never a secret; a
    ``listed`` field only where the operator lists choices for it (``allowed``), since otherwise its one
    value, perhaps a local path, is the operator's business."""
    label = getattr(opt_cls, "label", "options")
    out = {}
    for f in visitor_fields(opt_cls):
        if spec_of(f).access == LISTED and not (allowed or {}).get(f"{label}.{f.name}"):
            continue
        out[f.name] = values.get(f.name, _default(f))
    return out


def overlay(opt_cls: type, operator_values: Mapping[str, Any], visitor_values: Mapping[str, Any],
            allowed: Mapping[str, list] | None = None) -> dict[str, Any]:
    """The operator's options with a visitor's changes on top, refusing any change a visitor may not
    make. ``allowed``: ``visitors.choices`` ("label.name" -> the values a ``listed`` field may take;
    without a list, only the operator's own value)."""
    label = getattr(opt_cls, "label", "options")
    fields = {f.name: f for f in dataclasses.fields(opt_cls)}
    mine = [f.name for f in visitor_fields(opt_cls)]
    out = dict(operator_values)
    for k, v in visitor_values.items():
        f = fields.get(k)
        if f is None:
            raise BadInputError(f"unknown option(s) [{k!r}] for {label}; valid options = {mine}")
        spec = spec_of(f)
        if spec.access == OPERATOR or spec.secret:
            raise BadInputError(f"{label}.{k} is set by the operator (settings file or command line), not "
                                f"here; you may change: {', '.join(mine) or 'nothing'}")
        current = operator_values.get(k, _default(f))
        if spec.access == LISTED:
            choices = list((allowed or {}).get(f"{label}.{k}") or [current])
            if v not in choices:
                raise BadInputError(f"{label}.{k} must be one of the values the operator allows: "
                                    f"{_listing(choices)}; got {v!r}")
        out[k] = v
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def check_settings(settings: Any) -> None:
    """Every backend option the settings give, checked against its declaration when the server starts,
    before any work: a bad ``--set lite.fps=0`` stops the start with its message, not the first turn.
    Backends whose packages are not installed here are skipped (choosing one says why)."""
    from app_modules import registry
    from app_modules.errors import BackendUnavailableError

    names = {settings.backend(stage) for stage in registry.STAGES} | set(settings.options)
    for spec in registry.BACKENDS:
        if spec.name not in names:
            continue
        try:
            cls = registry.load_class(spec)
        except BackendUnavailableError:
            continue
        registry.build_options(cls, settings.options_for(spec.name))
