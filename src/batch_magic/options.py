"""Every option of a job, declared once: ``JobOptions``.

Each field says its type, default, help text and check. Everything else that
names an option is made from these declarations, or checked against them by
``tests/test_options.py``:

- the keywords of ``submit()``, ``prepare()``, ``dry_run()`` and ``run_pilot()``
  (``takes_job_options`` gives them the fields as keywords, checked here);
- the ``%%batch`` flags and their help (``magics.py`` builds the parser from
  the fields that have a flag, as IPython's ``script.py`` declares its
  arguments once);
- the ``%config BatchMagic.<name>`` defaults (the fields with a session default);
- a retry, which asks again what a recorded job asked (``JobOptions.from_record``).

Request options shape what is sent and are kept in the job's record; run
options (``wait``, ``force``, ``max_cost``) only say how ``submit()`` goes about it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
import textwrap
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigError
from .models import (
    EFFORT_LEVELS,
    RECOMMENDED_MODEL,
    SAMPLING_PARAMS,
    check_effort_name,
    sampling_refusal,
)

if TYPE_CHECKING:
    from .record import JobRecord

R = TypeVar("R")
_META = "batch_magic.option"


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- checks: each takes (name, value), returns the value to keep or raises ConfigError --
def _column_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise ConfigError(
            f"{name}={_quote(value)} must be a column name made of letters, digits and _ (e.g. 'sentiment')."
        )
    return value


def _model_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}={_quote(value)} is not a model name; use e.g. {RECOMMENDED_MODEL!r}.")
    return value


def _text(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name}={_quote(value)} must be text (a str), or None for none.")
    return value


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name}={_quote(value)} must be a whole number of at least 1, or None to let it be chosen.")
    return int(value)


def _effort(name: str, value: Any) -> str | None:
    check_effort_name(value)
    return value


def _labels(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    from .structured import OutputSpec  # not needed by a job without labels

    return OutputSpec.from_labels(value).labels


def _as_given(name: str, value: Any) -> Any:
    """A schema: read and checked by ``schemas.py`` when the job is planned."""
    return value


def _key(name: str, value: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    from .frames import key_names  # imports no Polars

    return tuple(key_names(value))


def _seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{name}={_quote(value)} must be a whole number of at least 0 (e.g. 7).")
    return int(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={_quote(value)} must be True or False.")
    return value


def _flag_or_auto(name: str, value: Any) -> bool | None:
    return None if value is None else _flag(name, value)


def _params(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name}={_quote(value)} must be a dict of Messages API params, e.g. {{'stop_sequences': ['END']}}."
        )
    return dict(value)


def _dollars(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name}={_quote(value)} must be a number of US dollars.")
    try:
        dollars = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={_quote(value)} must be a number of US dollars.") from None
    if not dollars >= 0:
        raise ConfigError(f"{name}={_quote(value)} must be at least 0 US dollars.")
    return dollars


@dataclass(frozen=True)
class Option:
    """What a ``JobOptions`` field is besides its type and default."""

    help: str
    check: Callable[[str, Any], Any]
    #: On the ``%%batch`` line as ``--<name with dashes>`` (and ``short``); False: Python only.
    flag: bool = True
    short: str | None = None
    #: What the flag's value is called in the usage line (None: the name in capitals).
    metavar: str | None = None
    #: The values it takes, when they are a fixed few (shown as the trait's choices).
    choices: tuple[str, ...] | None = None
    #: A default for the session: ``%config BatchMagic.<name>`` and ``[tool.batch_magic]``.
    session_default: bool = False
    #: Part of what is sent, kept in the job's record (``prepare()`` takes it); False: a run
    #: option, which only says how ``submit()`` goes about it.
    request: bool = True

    def flags(self, name: str) -> tuple[str, ...]:
        """The ``%%batch`` flags: ``--max-tokens``, then the short one if any."""
        long = "--" + name.replace("_", "-")
        return (long, self.short) if self.short else (long,)


def option(default: Any, help: str, check: Callable[[str, Any], Any], **how: Any) -> Any:
    """A ``JobOptions`` field: its default, and how it is described and checked."""
    return field(default=default, metadata={_META: Option(help=help, check=check, **how)})


@dataclass(frozen=True)
class JobOptions:
    """Every option of a job: what is asked of the model and how the job runs.

    Built from keywords (``JobOptions(model=..., labels=[...])``); each value is
    checked as it is given, with an error that names the option, quotes the value
    and says what to write instead.
    """

    out: str = option(
        "answer",
        "Name of the new column (default 'answer'); also NAME_status, NAME_error, ...",
        _column_name, short="-o",
    )
    model: str = option(RECOMMENDED_MODEL, "The model that answers.", _model_name, short="-m", session_default=True)
    system: str | None = option(
        None, "System prompt for every row (quoted on the magic's line).", _text, short="-s", session_default=True,
    )
    max_tokens: int | None = option(
        None,
        "Largest answer per row, in tokens; not given: 64 for labels, 1024 otherwise, plus room "
        "for thinking on a model that keeps thinking on.",
        _count, metavar="N", session_default=True,
    )
    effort: str | None = option(
        None,
        "low, medium, high, xhigh or max: how hard the model thinks (not given: the model's own). "
        "Lower is faster and cheaper.",
        _effort, short="-e", metavar="LEVEL", choices=EFFORT_LEVELS, session_default=True,
    )
    labels: Sequence[str] | str | None = option(
        None,
        "Classify: the labels, comma-separated or a list (on the magic's line, the name of a Python list "
        "works too); the column is a Categorical.",
        _labels, short="-l",
    )
    schema: Any = option(  # noqa: RUF009 (``option`` returns a dataclasses.field, as the others)
        None,
        "Extract fields: a JSON-schema dict or a pydantic model class (on the magic's line, its name); "
        "one typed column per field.",
        _as_given,
    )
    json: bool = option(False, "Ask for a JSON object; one column per top-level field.", _flag)
    chunk_size: int | None = option(
        None, "Most requests per batch; not given: as many as the API's limits allow.", _count, metavar="N", session_default=True
    )
    cache_system: bool | None = option(
        None,
        "Mark the system prompt for caching (1-hour TTL); not given: when it is long enough to be "
        "worth a cache write (about 1,024 tokens).",
        _flag_or_auto, flag=False,
    )
    use_tool: bool = option(
        False,
        "Ask for a structured answer as a forced tool call (chosen anyway for a model without "
        "structured outputs).",
        _flag, flag=False,
    )
    extra_params: Mapping[str, Any] | None = option(
        None, "More Messages API params, sent as given (e.g. metadata, stop_sequences).", _params, flag=False,
    )
    key: str | Sequence[str] | None = option(
        None,
        "Polars frames: the columns that identify a row (a name, 'a,b' or a list), so the answers "
        "find their rows in a filtered, reordered or reloaded frame.",
        _key, metavar="COL[,COL]",
    )
    sample: int | None = option(
        None,
        "Send N rows drawn at random, the same ones for the same --seed; the others get status "
        "not_sent, and a later run over them takes the sample's answers from the journal.",
        _count, metavar="N",
    )
    seed: int = option(
        0, "The seed of --sample (and of --pilot's rows): the same seed draws the same rows.", _seed, metavar="S"
    )
    stratify: str | None = option(
        None, "With --sample: each value of this column gets its share of the sample.", _text, metavar="COL",
    )
    wait: bool = option(False, "Block until the columns are merged.", _flag, short="-w", request=False)
    force: bool = option(
        False,
        "Make a new job even if an identical one exists (answers the journal has are still reused; "
        "--fresh sends every row).",
        _flag, short="-f", request=False,
    )
    fresh: bool = option(
        False,
        "Send every row again as a new job, instead of reusing answers the journal already has "
        "(for new answers from a model that varies).",
        _flag, request=False,
    )
    max_cost: float | None = option(
        None,
        "Refuse to submit when the job could cost more than this many US dollars.",
        _dollars, metavar="USD", session_default=True, request=False,
    )

    def __post_init__(self) -> None:
        for f, opt in declared():
            object.__setattr__(self, f.name, opt.check(f.name, getattr(self, f.name)))
        if self.stratify is not None and self.sample is None:
            raise ConfigError(
                f"stratify={self.stratify!r} chooses how a sample is drawn; give sample= (--sample N) too."
            )
        given = [name for name in ("labels", "schema", "json") if getattr(self, name) not in (None, False)]
        if len(given) > 1:
            raise ConfigError(f"Give only one of labels, schema and json (got {' and '.join(given)}).")

    @classmethod
    def from_record(cls, record: JobRecord) -> JobOptions:
        """The options that ask again exactly what a recorded job asked: its request
        options and output shape (text, labels, schema or JSON) as it was given."""
        o = record.options
        spec = record.output
        return cls(
            out=record.out,
            model=o.model,
            system=o.system,
            max_tokens=o.max_tokens,
            # The effort as asked; thinking is chosen again by prepare from the same answers
            # (off for labels and schemas where the model allows it), as it was the first time.
            effort=o.effort,
            labels=spec.labels if spec.kind == "labels" else None,
            schema=spec if spec.kind == "schema" else None,  # the spec: its schema as the user gave it
            json=spec.kind == "json",
            chunk_size=record.chunk_size,
            cache_system=o.cache_system,
            use_tool=o.use_tool,
            extra_params=dict(o.extra),
        )


def declared() -> Iterator[tuple[Field[Any], Option]]:
    """Each ``JobOptions`` field (a ``dataclasses.Field``) with its declaration, in order."""
    for f in fields(JobOptions):
        yield f, f.metadata[_META]


def option_names(*, run: bool = True) -> tuple[str, ...]:
    """The options' names: all of them, or (``run=False``) the request options only."""
    return tuple(f.name for f, opt in declared() if run or opt.request)


def value_type(name: str) -> type:
    """The type of an option's value, None aside: ``int`` for ``max_tokens``, ``object`` for
    a value of several types (``labels``, ``schema``)."""
    hint = typing.get_type_hints(JobOptions)[name]
    kinds = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    return kinds[0] if len(kinds) == 1 and kinds[0] in (bool, int, float, str) else object


def default_of(name: str) -> Any:
    return next(f.default for f, _ in declared() if f.name == name)


def options_help(*, run: bool = True) -> str:
    """The options as a docstring section (``help(submit)``), made from the declarations."""
    lines = ["Job options (``JobOptions``; each is a keyword):", ""]
    for f, opt in declared():
        if run or opt.request:
            lines += textwrap.wrap(
                f"{f.name}={default_of(f.name)!r}: {opt.help}", 84, initial_indent="    ", subsequent_indent="        "
            )
    return "\n".join(lines)


def takes_job_options(*, run: bool) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a function every job option as a keyword (the request options only when
    ``run`` is False, as for ``prepare()``, which sends nothing).

    The function itself takes ``options: JobOptions``; its callers write
    ``submit(df, template, model=..., labels=[...])`` as ever, or pass
    ``options=JobOptions(...)`` (keywords given beside it replace its values). Its
    signature and help show the options with their defaults. A misspelt option,
    or a sampling parameter the API no longer takes, is a clear ``ConfigError``.
    """
    names = option_names(run=run)
    run_only = set(option_names()) - set(names)

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        own = inspect.signature(func)
        others = [p for p in own.parameters if p != "options"]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            given = {name: kwargs.pop(name) for name in names if name in kwargs}
            base = kwargs.pop("options", None)
            for name in kwargs:
                if name not in others:
                    raise ConfigError(_unknown_keyword(func.__name__, name, run_only, [*names, *others]))
            if base is not None and not isinstance(base, JobOptions):
                raise ConfigError(f"options={_quote(base)} must be a JobOptions (or give the options as keywords).")
            options = replace(base, **given) if base is not None else JobOptions(**given)
            return func(*args, options=options, **kwargs)

        keywords = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default_of(name),
                annotation=typing.get_type_hints(JobOptions)[name],
            )
            for name in names
        ]
        params = [p for p in own.parameters.values() if p.name != "options"]
        positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        rest = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        options_param = inspect.Parameter(
            "options", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=JobOptions | None
        )
        wrapper.__signature__ = own.replace(parameters=[*positional, *keywords, options_param, *rest])  # type: ignore[attr-defined]
        wrapper.__doc__ = (func.__doc__ or "").rstrip() + "\n\n    " + options_help(run=run).replace("\n", "\n    ")
        return wrapper

    return decorate


def _unknown_keyword(function: str, name: str, run_only: set[str], known: list[str]) -> str:
    if name in SAMPLING_PARAMS:
        return sampling_refusal(name)
    if name in run_only:
        return f"{function}() takes no {name}=: it is an option of submit(), which sends the job."
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"Did you mean {close[0]}=?" if close else f"Its options: {', '.join(known)}."
    return f"{function}() has no option {name!r}. {hint}"


__all__ = ["JobOptions", "Option", "declared", "option_names", "options_help", "takes_job_options", "value_type"]
