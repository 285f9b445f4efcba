"""``%%batch`` and ``%batch``: a thin shell over the public Python API.

This is the one boundary that talks to a person: it parses the line, looks
names up in the notebook's namespace, calls ``batch_magic.submit`` /
``attach`` / ``jobs`` / ``prepare``, shows the job (a widget panel in a
Jupyter kernel, short text lines elsewhere) and turns library errors into
``UsageError``s, which IPython prints without a traceback. Importing this
module is cheap: pandas, anthropic and the engine are imported on first use.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core import magic_arguments as ma
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from traitlets import Enum, Float, Int, TraitError, TraitType, Unicode, validate
from traitlets.config import Config, Configurable

from .errors import ConfigError
from .options import JobOptions, declared, value_type
from .states import DisplayState

if TYPE_CHECKING:
    import pandas as pd

    from .frames import Frame
    from .job import BatchJob, JobStatus
    from .journal import Journal
    from .panel import JobPanel, TextStatus
    from .settings import JobSettings

#: Flags of sampling parameters the API no longer takes (refused with the reason).
SAMPLING_FLAGS = {"--temperature": "temperature", "-t": "temperature", "--top-p": "top_p", "--top-k": "top_k"}
SIM_API_KEY = "sk-sim-local"
_BRACKET_TARGET = re.compile(r"\s*(?P<target>[A-Za-z_][\w.]*\[\s*(?P<q>['\"]).+?(?P=q)\s*\])(?=\s|$)")

CELL_HELP = """\
Send every row of a DataFrame to Claude through the Message Batches API,
at half the realtime price. The cell body is a Jinja2 template over the
columns:

  %%batch df --out sentiment --labels positive,negative,neutral
  Classify the sentiment of this review: {{ review }}

With %%batch df.review and a body without {{ }}, the body is the
instructions and each row's review text follows it. The cell returns at
once and a panel shows the job (--wait blocks until it ends); the answers
land in df as OUT, OUT_status, OUT_error and token columns. Re-running an
identical cell re-attaches to its job instead of paying again.

Images and PDFs: {{ image(photo) }}, {{ pdf(invoice) }} or {{ media(file) }}
put a row's file (a path, bytes or a PIL image) where the prompt needs it;
with %%batch df.photo the column's file goes first, then the body. Each
distinct file is uploaded once through the Files API (%batch files JOB)."""



# -- the line commands, declared once -------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One argument of a line command, as ``argparse.add_argument`` takes it."""

    names: tuple[str, ...]
    help: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def positional(self) -> bool:
        return not self.names[0].startswith("-")

    def usage(self) -> str:
        """How the argument is written in a usage line: ``JOB``, ``[DF]``, ``[--timeout S]``."""
        choices = self.options.get("choices")
        metavar = self.options.get("metavar") or ("|".join(choices) if choices else self.names[0].upper())
        if self.positional:
            return f"[{metavar}]" if self.options.get("nargs") == "?" else metavar
        flag = self.names[0]
        if self.options.get("action") == "store_true":
            return f"[{flag}]"
        # A repeatable flag reads as one value per flag; its help says it can be repeated.
        return f"[{flag} {metavar}]"


@dataclass(frozen=True)
class LineCommand:
    """A ``%batch <name>`` command: what it does and the arguments it takes."""

    name: str
    #: The line ``%batch help`` shows for it.
    summary: str
    params: tuple[Param, ...] = ()

    def usage(self, width: int = 1000) -> list[str]:
        """``%batch attach JOB [DF] [--wait]``, in lines of at most ``width`` characters
        (whole arguments to a line, continued under the first argument)."""
        head = f"%batch {self.name}"
        lines = [head]
        for part in (p.usage() for p in self.params):
            if len(lines[-1]) + 1 + len(part) > width and lines[-1].strip() != head:
                lines.append(" " * len(head))
            lines[-1] += " " + part
        return lines

    def parser(self) -> _SubParser:
        parser = _SubParser(prog=f"batch {self.name}", description=self.summary)
        for param in self.params:
            parser.add_argument(*param.names, help=param.help, **param.options)
        return parser


_JOB = "a job id, a unique prefix of one, or last"
_JOB_ARG = Param(("job",), _JOB, {"metavar": "JOB"})
_DF_ARG = Param(("df",), "the DataFrame to merge into (its name in the notebook)", {"nargs": "?", "metavar": "DF"})
_WAIT_ARG = Param(("--wait", "-w"), "block until the columns are merged", {"action": "store_true"})

#: Every ``%batch`` line command: the parsers, ``%batch help`` and the README's list
#: (scripts/options_table.py) are all made from this.
LINE_COMMANDS: tuple[LineCommand, ...] = (
    LineCommand("list", "the journal's jobs, one row each (.frame: all the fields)"),
    LineCommand(
        "status", "a status line for JOB (default: this session's jobs)",
        (Param(("job",), _JOB, {"nargs": "?", "metavar": "JOB"}),),
    ),
    LineCommand(
        "job", "return the BatchJob (job = %batch job)",
        (Param(("job",), _JOB + " (default: last)", {"nargs": "?", "default": "last", "metavar": "JOB"}),),
    ),
    LineCommand(
        "wait", "block until JOB ends (default: the latest job of this session)",
        (
            Param(("job",), _JOB + " (default: last)", {"nargs": "?", "default": "last", "metavar": "JOB"}),
            Param(("--timeout",), "give up waiting after S seconds (the job goes on)",
                  {"type": float, "default": None, "metavar": "S"}),
        ),
    ),
    LineCommand(
        "attach", "pick a job up again (after a restart); merge into DF",
        (
            _JOB_ARG, _DF_ARG, _WAIT_ARG,
            Param(("--by-position",), "merge row i of the job into row i of DF, for a job whose index "
                  "labels cannot be read (only if DF holds its rows in the same order)", {"action": "store_true"}),
        ),
    ),
    LineCommand("cancel", "cancel the batches still running; what finished is kept", (_JOB_ARG,)),
    LineCommand(
        "retry",
        "send again only the rows that errored, expired or were invalid; their columns are "
        "updated in place (DF: default, the job's own DataFrame in this session)",
        (_JOB_ARG, _DF_ARG, _WAIT_ARG),
    ),
    LineCommand(
        "files",
        "a job's uploaded images and PDFs (file id, name, size); --delete removes them from "
        "the server and the journal, once the job has ended",
        (
            Param(("job",), _JOB + " (default: last)", {"nargs": "?", "default": "last", "metavar": "JOB"}),
            Param(("--delete",), "delete the job's uploads (kept: those another unfinished job uses)",
                  {"action": "store_true"}),
        ),
    ),
    LineCommand(
        "trust",
        "a job from an older journal: convert its pickled index (index.pkl) to data; only "
        "for a journal you trust",
        (_JOB_ARG,),
    ),
    LineCommand(
        "eval",
        "measure OUT's answers against the gold labels in COL: accuracy with its interval, "
        "per-class F1, kappa, the confusion matrix, cost per correct answer, the rows it got "
        "wrong (DF: default, the DataFrame OUT's job of this session filled)",
        (
            Param(("df",), "the DataFrame (its name in the notebook)", {"nargs": "?", "metavar": "DF"}),
            Param(("out",), "the job's --out column", {"metavar": "OUT"}),
            Param(("--gold", "-g"), "the gold column (required); for a --schema job FIELD=COL, once per field",
                  {"action": "append", "required": True, "metavar": "COL"}),
            Param(("--tolerance",), "numbers within X of gold count as right (schema fields)",
                  {"type": float, "default": 0.0, "metavar": "X"}),
        ),
    ),
    LineCommand(
        "compare",
        "two jobs' answers on the rows both answered: agreement, kappa and the rows that "
        "differ; with --gold each one's accuracy and McNemar's exact test",
        (
            Param(("df",), "the DataFrame (its name in the notebook)", {"nargs": "?", "metavar": "DF"}),
            Param(("a",), "one job's --out column", {"metavar": "A"}),
            Param(("b",), "the other's", {"metavar": "B"}),
            Param(("--gold", "-g"), "the gold column", {"default": None, "metavar": "COL"}),
        ),
    ),
    LineCommand(
        "simulator",
        "an in-process Batches API simulator for this session; it keeps its batches in DIR "
        "(default: the journal folder's simulator/), so they outlive a kernel restart. Started "
        "again with the same settings it keeps running; with others it restarts on the same "
        "port, and the jobs still running follow it",
        (
            Param(("action",), "start, stop or status", {"choices": ("start", "stop", "status")}),
            Param(("--processing-time",), "seconds a batch takes (start)",
                  {"type": float, "default": None, "metavar": "S"}),
            Param(("--error-rate",), "the fraction F of requests that error with CATEGORY (start); "
                  "repeat the flag for more categories: --error-rate overloaded_error=0.1 "
                  "--error-rate api_error=0.05",
                  {"action": "append", "default": [], "metavar": "CATEGORY=F"}),
            Param(("--state",), "the folder it keeps its batches in (start)", {"default": None, "metavar": "DIR"}),
            Param(("--any-model",), "serve any claude-... model id as a current model (start); by default "
                  "an id the simulator's model table does not know is refused with the API's 404",
                  {"action": "store_true"}),
        ),
    ),
    LineCommand(
        "help", "this list, or the arguments of one command (%batch help attach)",
        (Param(("command",), "a line command", {"nargs": "?", "metavar": "COMMAND"}),),
    ),
)
COMMANDS = {c.name: c for c in LINE_COMMANDS}
SUBCOMMANDS = tuple(COMMANDS)


def line_help() -> str:
    """The list of line commands, made from ``LINE_COMMANDS``."""
    width, column = 92, 35
    lines = ["Line commands (``%batch ...``):", ""]
    for command in LINE_COMMANDS:
        usage = ["  " + line for line in command.usage(width - 2)]
        summary = textwrap.wrap(command.summary, width - column)
        if len(usage) == 1 and len(usage[0]) < column - 1:
            lines.append(usage[0].ljust(column) + summary[0])
            summary = summary[1:]
        else:
            lines.extend(usage)
        lines.extend(" " * column + part for part in summary)
    lines += [
        "",
        "JOB is a job id, a unique prefix of one, or ``last``.",
        "Defaults: ``%config BatchMagic`` lists them; ``[tool.batch_magic]`` in the",
        "pyproject.toml of the notebook's folder (or the nearest folder above it) sets them too.",
    ]
    return "\n".join(lines)


LINE_HELP = line_help()


# -- the cell's arguments and the session defaults, made from JobOptions --------------
def option_params() -> tuple[Param, ...]:
    """A ``%%batch`` flag for every job option that has one: its name, help and value type
    as ``JobOptions`` declares them (``--max-tokens N`` takes a whole number)."""
    params = []
    for f, opt in declared():
        if not opt.flag:
            continue
        kind = value_type(f.name)
        how: dict[str, Any] = {"action": "store_true"} if kind is bool else {}
        if kind in (int, float):
            how["type"] = kind
        if opt.metavar:
            how["metavar"] = opt.metavar
        more = f" Session default: BatchMagic.{f.name}." if opt.session_default else ""
        params.append(Param(opt.flags(f.name), opt.help + more, how))
    return tuple(params)


#: Every argument of ``%%batch``: the DataFrame, the job options, then what to do
#: instead of sending the job. ``%%batch?`` and the README's table come from these.
CELL_PARAMS: tuple[Param, ...] = (
    Param(("target",), "The DataFrame (DF), or DF.COLUMN to send the cell's text then that column.", {"nargs": "?"}),
    *option_params(),
    Param(("--pilot",), "Send N sample rows through the realtime API and show them; nothing is merged.",
          {"type": int, "metavar": "N"}),
    Param(("--dry-run",), "Plan and show the estimate and first prompts; nothing is sent.", {"action": "store_true"}),
    Param(("--exact-tokens",), "With --dry-run: count input tokens with the API's free count_tokens.",
          {"action": "store_true"}),
)


def cell_arguments(func: Any) -> Any:
    """``magic_arguments``' decorators for ``CELL_PARAMS``, applied in order (as IPython's
    ``script.py`` does with its ``script_args``)."""
    for param in reversed(CELL_PARAMS):
        func = ma.argument(*param.names, help=param.help, **param.options)(func)
    return func


def _option_trait(name: str) -> TraitType[Any, Any]:
    """The ``%config BatchMagic.<name>`` trait of a job option: type, default, choices and
    help from ``JobOptions``."""
    opt = next(o for f, o in declared() if f.name == name)
    default = getattr(JobOptions(), name)
    text = f"{opt.help} (--{name.replace('_', '-')} overrides it for one job.)"
    kind = value_type(name)
    trait: TraitType[Any, Any]
    # None is let through to the option's own check, which refuses it where it is no value.
    if opt.choices:
        trait = Enum(opt.choices, default, allow_none=True, help=text)
    elif kind is int:
        trait = Int(default, allow_none=True, help=text)
    elif kind is float:
        trait = Float(default, allow_none=True, help=text)
    else:
        trait = Unicode(default, allow_none=True, help=text)
    return trait.tag(config=True)


#: The job options a session can set defaults for.
SESSION_DEFAULTS = tuple(f.name for f, opt in declared() if opt.session_default)


def _check_session_default(self: Any, proposal: Any) -> Any:
    """A default is checked as the option is (``%config BatchMagic.max_tokens = 0`` is refused
    with the option's own message)."""
    name = proposal["trait"].name
    opt = next(o for f, o in declared() if f.name == name)
    try:
        return opt.check(name, proposal["value"])
    except ConfigError as exc:
        raise TraitError(str(exc)) from None


#: The session defaults of the job options, as traits: ``BatchMagic`` inherits them.
JobDefaults: type[Configurable] = type(
    "JobDefaults",
    (Configurable,),
    {
        "__doc__": "Session defaults of the job options (%config BatchMagic.<name>), made from JobOptions.",
        **{name: _option_trait(name) for name in SESSION_DEFAULTS},
        "_check_session_default": validate(*SESSION_DEFAULTS)(_check_session_default),
    },
)

#: ``BatchMagic`` traits that set the engine's ``JobSettings`` (trait -> field).
SETTINGS_TRAITS = {
    "max_attempts": "max_attempts",
    "max_in_flight": "max_in_flight",
    "poll_interval_min": "poll_min",
    "poll_interval_max": "poll_max",
}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Library errors become UsageErrors (message, no traceback) here and only here."""
    from .errors import BatchMagicError

    try:
        yield
    except UsageError:
        raise
    except BatchMagicError as exc:
        raise UsageError(str(exc)) from None
    except TimeoutError as exc:
        raise UsageError(str(exc)) from None


def _split(line: str) -> list[str]:
    from IPython.utils.process import arg_split

    try:
        # posix=True: quotes group words and are removed, as in a shell.
        return list(arg_split(line, posix=True, strict=True))
    except ValueError as exc:
        raise UsageError(f"Cannot read the line {line!r}: {exc} (check the quotes).") from None


class _SubParser(ma.MagicArgumentParser):
    """A ``%batch <command>`` parser whose errors name the command and its usage."""

    def parse_argstring(self, argstring: str, *, partial: bool = False) -> Any:
        return self.parse_args(_split(argstring))

    def error(self, message: str) -> Any:
        usage = " ".join(self.format_usage().replace("::", " ").replace("usage:", " ").split())
        raise UsageError(f"%{self.prog}: {message}. Usage: {usage}")


def _usage_first(func: Any) -> Any:
    """``magic_arguments`` writes the help as a reST literal block (``::`` then the
    indented usage), which ``%%batch?`` would print as is: start with the usage."""
    doc = func.__doc__ or ""
    if not doc.startswith("::"):
        return func
    usage, _, rest = doc[2:].strip("\n").partition("\n\n")
    # Re-flowed under its first line, whole [--option VALUE] groups to a line.
    words = re.findall(r"\[[^\]]*\]|\S+", usage)
    lines = [" ".join(words[:2])]
    for word in words[2:]:
        if len(lines[-1]) + 1 + len(word) > 78:
            lines.append(" " * (len(words[0]) + 1) + word)
        else:
            lines[-1] += " " + word
    func.__doc__ = "\n".join(lines) + "\n\n" + rest
    return func


def _help_ends_with(text: str) -> Any:
    """Add ``text`` to a magic's docstring (what ``%batch?`` prints)."""

    def add(func: Any) -> Any:
        func.__doc__ = f"{func.__doc__}\n\n{text}"
        return func

    return add


@magics_class
# mypy cannot follow a base class made at import time (JobDefaults).
class BatchMagic(Magics, JobDefaults):  # type: ignore[valid-type, misc]
    """Send every row of a DataFrame through the Message Batches API."""

    # -- defaults (``%config BatchMagic.<name> = ...`` or [tool.batch_magic]) ----
    # The job options' defaults (model, max_tokens, ...) come from JobDefaults; these are
    # the session's and the engine's.
    journal_dir = Unicode(
        None,
        allow_none=True,
        help="Folder of the job journal; None: $BATCH_MAGIC_DIR or .batch_magic beside the notebook.",
    ).tag(config=True)
    max_in_flight = Int(4, help="Batches in flight at once across the journal.").tag(config=True)
    max_attempts = Int(3, help="Attempts per request, the first included (retriable errors, expiry).").tag(
        config=True
    )
    poll_interval_min = Float(
        None, allow_none=True, help="Shortest wait between polls (s); None: 1 s (0.2 s on a local simulator)."
    ).tag(config=True)
    poll_interval_max = Float(
        None, allow_none=True, help="Longest wait between polls (s); None: 60 s (5 s on a local simulator)."
    ).tag(config=True)
    display = Enum(
        ("auto", "widget", "text", "none"),
        "auto",
        help="How a job shows: a widget panel (auto in Jupyter), text lines, or nothing.",
    ).tag(config=True)

    def _load_config(
        self, cfg: Config, section_names: list[str] | None = None, traits: dict[str, TraitType[Any, Any]] | None = None
    ) -> None:
        """``%config BatchMagic.temperature = ...`` (or a profile setting it): the reason it
        is gone and what to use, instead of traitlets' bare "not recognized"."""
        section = cfg.get(type(self).__name__)
        removed = [k for k in (section or {}) if k in SAMPLING_FLAGS.values()]
        if removed:
            import warnings

            from .config import REMOVED_KEYS

            cfg = Config(cfg.copy())
            for name in removed:
                warnings.warn(f"BatchMagic.{name} is ignored: {REMOVED_KEYS[name]}.", UserWarning, stacklevel=2)
                del cfg[type(self).__name__][name]
        super()._load_config(cfg, section_names=section_names, traits=traits)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.views: dict[str, JobPanel | TextStatus] = {}
        self.simulator: Any = None
        #: The folder the session's simulator keeps its batches in.
        self.simulator_state: Path | None = None
        self._sim_client: Any = None
        #: What the running simulator was started with, to tell a re-run set-up cell
        #: (the same settings: it keeps running) from a change (a restart).
        self._sim_settings: _SimulatorSettings | None = None
        #: The port this session's simulator last had: a restart asks for it again, so the
        #: jobs it is running keep their server.
        self._sim_port = 0

    # ======================================================================
    # %%batch (cell) and %batch (line)
    # ======================================================================
    @no_var_expand  # the cell's line is the user's text (a system prompt may hold {x} or $x)
    @_usage_first
    @ma.magic_arguments("%batch")
    @ma.kwds(description=CELL_HELP, epilog=line_help())
    @cell_arguments
    @cell_magic
    def batch(self, line: str, cell: str) -> Any:
        """Send every row of a DataFrame through the Message Batches API (see CELL_HELP)."""
        with user_errors():
            return self._cell(line, cell)

    @line_magic("batch")
    @_help_ends_with(LINE_HELP)
    def batch_line(self, line: str) -> Any:
        """The ``%batch`` line commands. IPython expands ``$name`` and ``{name}`` in the
        line first, as for its own line magics (``%batch retry $job df``)."""
        with user_errors():
            return self._line(line)

    # ======================================================================
    # the cell
    # ======================================================================
    def _cell(self, line: str, cell: str) -> Any:
        args = self._parse_cell_line(line)
        if not args.target:
            raise UsageError(
                "Name the DataFrame: %%batch df [--out NAME] ... (or %%batch df.column). "
                "%%batch? lists the options."
            )
        df, column, name = self._resolve_target(args.target)
        template = self._template(df, column, name, cell)
        if args.labels is not None and args.schema is not None:
            raise UsageError("Give either --labels or --schema, not both.")
        if args.dry_run and args.pilot is not None:
            raise UsageError("Give either --dry-run or --pilot, not both.")
        options = self._options(args)
        from . import api

        if args.exact_tokens and not args.dry_run:
            raise UsageError("--exact-tokens goes with --dry-run.")
        if args.dry_run:
            # With the session simulator or a key, the Models API is asked; else the snapshot.
            prepared = api.dry_run(
                df, template, options=options, exact_tokens=args.exact_tokens, client=self._client(),
                journal=self.journal_dir,
            )
            self._show(prepared)
            if options.max_cost is not None:
                api.check_budget(prepared.estimate, options.max_cost)
            return None
        if args.pilot is not None:
            if options.sample is not None:
                raise UsageError("Give either --pilot (realtime, nothing merged) or --sample (a batch job), not both.")
            return self._pilot(df, template, args.pilot, options)
        return self._submit(df, template, options, name)

    def _parse_cell_line(self, line: str) -> Any:
        # df['a column with spaces'] is one target, whatever the shell-like splitting says.
        bracket = _BRACKET_TARGET.match(line)
        if bracket:
            line = line[bracket.end():]
        words = _split(line)  # a clear message for bad quoting before argparse sees it
        for word in words:
            name = SAMPLING_FLAGS.get(word.split("=", 1)[0])
            if name is not None:
                from .models import sampling_refusal

                raise UsageError(sampling_refusal(name, flag=True))
        try:
            args = self.batch.parser.parse_args(words)
        except UsageError as exc:
            parser = self.batch.parser
            known = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
            hints = []
            for word in words:
                flag = word.split("=", 1)[0]
                if flag.startswith("-") and flag not in parser._option_string_actions:
                    close = difflib.get_close_matches(flag, known, n=1)
                    if close:
                        hints.append(f"did you mean {close[0]} for {flag}?")
            hint = (" (" + "; ".join(hints) + ")") if hints else ""
            raise UsageError(f"%%batch: {exc}{hint}. %%batch? lists the options.") from None
        if bracket:
            if args.target:
                raise UsageError(f"%%batch: two DataFrames named: {bracket['target']!r} and {args.target!r}.")
            args.target = bracket["target"]
        return args

    def _submit(self, df: Frame, template: Any, options: JobOptions, name: str | None = None) -> None:
        from dataclasses import replace

        from . import api

        earlier = set() if options.force else set(self._journal().job_ids())
        job = api.submit(
            df, template, options=replace(options, wait=False),  # the panel first, then the wait
            client=self._client(), journal=self.journal_dir, settings=self._settings(), start=False,
        )
        if job.id in earlier:  # the same cell again: its job, not a new one
            from .panel import state_word

            print(
                f"Job {job.id} ({state_word(job.status.state)}): the same job as before, re-attached; "
                "nothing was sent again (--fresh sends every row again)."
            )
        self._run(job, wait=options.wait, frame=df, name=name)
        return None

    def _pilot(self, df: pd.DataFrame, template: Any, n: int, options: JobOptions) -> None:
        from . import pilot

        if n < 1:
            raise UsageError(f"--pilot {n}: give the number of sample rows, at least 1 (e.g. --pilot 5).")
        result = pilot.run_pilot(df, template, n=n, client=self._client(), options=options)
        self._show(result)
        return None

    # -- names ---------------------------------------------------------------
    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _dataframes(self) -> list[str]:
        from .frames import is_polars

        pd = sys.modules.get("pandas")
        return sorted(
            k for k, v in self._namespace().items()
            if not k.startswith("_") and ((pd is not None and isinstance(v, pd.DataFrame)) or is_polars(v))
        )

    def _lookup(self, dotted: str) -> tuple[bool, Any]:
        ns = self._namespace()
        head, *rest = dotted.split(".")
        if head not in ns:
            return False, None
        obj = ns[head]
        for part in rest:
            if not hasattr(obj, part):
                return False, None
            obj = getattr(obj, part)
        return True, obj

    def _not_a_dataframe(self, name: str) -> UsageError:
        frames = self._dataframes()
        close = difflib.get_close_matches(name, frames, n=3, cutoff=0.5)
        if close:
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?"
        elif frames:
            hint = f" DataFrames in the notebook: {', '.join(frames[:20])}."
        else:
            hint = " There is no DataFrame in the notebook yet: load one first (e.g. df = pd.read_csv(...))."
        return UsageError(f"No DataFrame named {name!r}.{hint}")

    def _resolve_target(self, target: str) -> tuple[Frame, str | None, str]:
        """``df``, ``df.column``, ``df['column name']`` -> (DataFrame, column or None, name)."""
        import pandas as pd

        from .frames import is_polars

        target = target.strip()
        m = re.fullmatch(r"(?P<df>[A-Za-z_][\w.]*)\[\s*(?P<q>['\"])(?P<col>.+)(?P=q)\s*\]", target)
        if m:
            candidates = [(m["df"], m["col"])]
        else:
            candidates = [(target, None)]
            if "." in target:
                head, col = target.rsplit(".", 1)
                candidates.append((head, col))
        not_frame: tuple[str, Any] | None = None
        for name, col in candidates:
            found, obj = self._lookup(name)
            if not found:
                continue
            if isinstance(obj, pd.DataFrame) or is_polars(obj):
                if col is not None and col not in obj.columns:
                    cols = [str(c) for c in obj.columns]
                    close = difflib.get_close_matches(col, cols, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise UsageError(
                        f"{name!r} has no column {col!r}.{hint} Columns: {', '.join(map(repr, cols[:30]))}."
                    )
                return obj, col, name
            if not_frame is None:
                not_frame = (name, obj)
        if not_frame is not None:
            name, obj = not_frame
            extra = f" Use {name}.to_frame() first, or name its DataFrame." if isinstance(obj, pd.Series) else ""
            raise UsageError(f"{name!r} is a {type(obj).__name__}, not a DataFrame.{extra}")
        raise self._not_a_dataframe(target.split(".")[0].split("[")[0])

    def _template(self, df: pd.DataFrame, column: str | None, name: str, cell: str) -> Any:
        from .template import Template

        body = cell.strip("\n")
        has_placeholder = "{{" in body or "{%" in body
        if column is not None:
            if has_placeholder:
                raise UsageError(
                    f"The cell uses {{{{ }}}} placeholders, so name the DataFrame alone: %%batch {name} ... "
                    f"(the {name}.{column} form sends the cell's text followed by that column)."
                )
            from .media import looks_like_media

            return Template.instructions_then_column(body, column, media=looks_like_media(df[column].head(50)))
        template = Template.compile(body)
        if not template.variables:
            text_cols = [str(c) for c in df.columns][:5]
            example = text_cols[0] if text_cols else "column"
            raise UsageError(
                "The template has no {{ column }} placeholder, so every row would get the same prompt. "
                f"Write e.g. {{{{ {example} }}}} where each row's value goes, or use "
                f"%%batch {name}.{example} to send the cell's text followed by that column."
            )
        return template

    def _labels(self, value: str | None) -> Any:
        if value is None:
            return None
        ns = self._namespace()
        if value.isidentifier() and value in ns:
            obj = ns[value]
            if isinstance(obj, str):
                return obj
            try:
                return [getattr(x, "value", x) for x in obj]
            except TypeError:
                raise UsageError(f"--labels {value}: {value!r} is a {type(obj).__name__}, not a list of labels.") from None
        if "," not in value:
            close = difflib.get_close_matches(value, [k for k in ns if not k.startswith("_")], n=1)
            hint = f" (did you mean the list {close[0]!r}?)" if close else ""
            raise UsageError(
                f"--labels {value}: give at least two labels separated by commas "
                f"(--labels positive,negative) or the name of a Python list{hint}."
            )
        return value

    def _schema(self, value: str | None) -> Any:
        if value is None:
            return None
        found, obj = self._lookup(value)
        if not found:
            ns = self._namespace()
            close = difflib.get_close_matches(value, [k for k in ns if not k.startswith("_")], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"--schema {value}: no variable {value!r} in the notebook.{hint} Give the name of a "
                "JSON-schema dict or a pydantic model class."
            )
        return obj

    def _options(self, args: Any) -> JobOptions:
        """The job's options: each flag on the line, else its session default (the trait),
        else JobOptions' own default. ``--labels`` and ``--schema`` may name a variable."""
        from_names = {"labels": self._labels, "schema": self._schema}
        if args.json and (args.labels is not None or args.schema is not None):
            raise UsageError("--json asks for free-form JSON: give it without --labels or --schema.")
        values: dict[str, Any] = {}
        for f, opt in declared():
            given = getattr(args, f.name) if opt.flag else None
            if f.name in from_names:
                given = from_names[f.name](given)
            if given is not None and given is not False:  # a store_true flag not given is False
                values[f.name] = given
            elif opt.session_default:
                values[f.name] = getattr(self, f.name)
        return JobOptions(**values)

    # -- running -----------------------------------------------------------
    def _client(self) -> Any:
        """The SDK client for this magic's jobs: the session simulator's, or None (the environment)."""
        if self.simulator is not None:
            if self._sim_client is None:
                import anthropic

                self._sim_client = anthropic.Anthropic(api_key=SIM_API_KEY, base_url=self.simulator.url)
            return self._sim_client
        return None

    def _is_local(self) -> bool:
        if self.simulator is not None:
            return True
        from .client import is_local_url

        base = os.environ.get("ANTHROPIC_BASE_URL")
        return bool(base) and is_local_url(base or "")

    def _settings(self) -> JobSettings:
        """The engine settings for where this magic's jobs go, with the traits the user set:
        chosen by the same ``JobSettings.for_destination`` as the Python API's."""
        from .settings import JobSettings

        given = {field: getattr(self, trait) for trait, field in SETTINGS_TRAITS.items()}
        return JobSettings.for_destination(local=self._is_local(), **given)

    def _run(self, job: BatchJob, *, wait: bool, frame: Any = None, name: str | None = None) -> None:
        """Show the job and start it; a Polars ``frame``'s variable (``name``, else the one
        bound to it) is rebound to the new frame with the answers when the job ends."""
        from .frames import Rebind, is_polars

        if is_polars(frame):
            job.observe(Rebind(self._namespace(), name, frame, job))
        self._view(job)
        job.start()
        if wait:
            job.wait()

    def _view(self, job: BatchJob) -> None:
        from . import panel

        old = self.views.pop(job.id, None)
        if old is not None:
            old.close()
        mode = self.display
        if mode == "none":
            return
        if mode == "widget" or (mode == "auto" and panel.has_widget_frontend(self.shell)):
            widget_view = panel.JobPanel(job)
            widget_view.display()
            view: JobPanel | TextStatus = widget_view
        else:
            view = panel.TextStatus(job)
        self.views[job.id] = view

    def _show(self, obj: Any) -> None:
        from IPython.display import display

        display(obj)

    # ======================================================================
    # the line commands
    # ======================================================================
    def _line(self, line: str) -> Any:
        words = _split(line)
        if not words:
            raise UsageError(f"%batch needs a command: {', '.join(SUBCOMMANDS)}.\n\n{LINE_HELP}")
        command, rest = words[0], line.strip()[len(words[0]):].strip()
        handler = getattr(self, f"_cmd_{command}", None) if command in SUBCOMMANDS else None
        if handler is None:
            close = difflib.get_close_matches(command, SUBCOMMANDS, n=1)
            hint = f" Did you mean %batch {close[0]}?" if close else ""
            looks_like_df = command in self._namespace()
            extra = " (%%batch with two % is the cell magic that sends a DataFrame.)" if looks_like_df else ""
            raise UsageError(
                f"Unknown command {command!r}.{hint}{extra} Commands: {', '.join(SUBCOMMANDS)}."
            )
        return handler(rest)

    def _journal(self) -> Journal:
        from .journal import Journal

        return Journal(self.journal_dir)

    def _session_jobs(self) -> list[BatchJob]:
        """The jobs started in this kernel on this magic's journal (by a cell or by
        ``batch_magic.submit()``: the engine keeps the one registry), oldest first."""
        from .job import session_jobs

        return session_jobs(self._journal())

    def _find(self, job_id: str) -> BatchJob | None:
        """A job of this session by id, prefix or ``last``."""
        jobs = {job.id: job for job in self._session_jobs()}
        if job_id in jobs:
            return jobs[job_id]
        if job_id in ("last", "latest"):
            return next(reversed(jobs.values()), None)
        return jobs.get(self._journal().resolve(job_id))

    def _args(self, command: str, rest: str) -> Any:
        """The arguments of a line command, parsed by its declared parser."""
        return COMMANDS[command].parser().parse_argstring(rest)

    def _readonly(self, job_id: str) -> BatchJob:
        """A job from the journal, not driven (no client needed)."""
        from .job import BatchJob

        jr = self._journal()
        return BatchJob(jr, jr.resolve(job_id), None)

    def _cmd_help(self, rest: str) -> None:
        args = self._args("help", rest)
        if args.command is None:
            print(LINE_HELP)
        elif args.command in COMMANDS:
            command = COMMANDS[args.command]
            arguments = command.parser().format_help().split("\n\n", 3)[-1]  # after usage and summary
            print("\n".join(command.usage(78)) + "\n\n" + command.summary + "\n\n" + arguments.rstrip())
        else:
            raise UsageError(f"%batch help: no command {args.command!r}; commands: {', '.join(SUBCOMMANDS)}.")

    def _cmd_list(self, rest: str) -> Any:
        from . import api
        from .report import JobList

        self._args("list", rest)
        frame = api.jobs(self.journal_dir)
        if frame.empty:
            print(f"No jobs in the journal at {str(self._journal().root)!r} yet.")
            return None
        for _, row in frame[frame["state"] == "unreadable"].iterrows():
            print(f"Job {row['job_id']} cannot be read: {row['error']}")
        from .record import JobState

        failed = frame.loc[frame["state"] == JobState.FAILED.value, "job_id"].tolist()
        if failed:
            # Failed is not ended: its batches are kept and nothing sent is paid again.
            print(
                f"{len(failed)} failed job(s) ({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''}) "
                "resume where they stopped: re-run the cell, or %batch attach JOB DF."
            )
        return JobList(frame)

    def _cmd_status(self, rest: str) -> None:
        from .panel import format_status

        args = self._args("status", rest)
        if args.job:
            live = self._find(args.job)
            jobs = [live if live is not None else self._readonly(args.job)]
        else:
            jobs = self._session_jobs()
            if not jobs:
                ids = self._journal().job_ids()
                if not ids:
                    print("No jobs yet: %%batch df ... starts one.")
                    return
                jobs = [self._readonly(ids[-1])]
        for job in jobs:
            print(_status_text(job.status, format_status))

    def _cmd_job(self, rest: str) -> BatchJob:
        args = self._args("job", rest)
        live = self._find(args.job)
        if live is not None:
            return live
        if args.job in ("last", "latest") and not self._journal().job_ids():
            raise UsageError("No jobs yet: %%batch df ... starts one.")
        return self._readonly(args.job)

    def _cmd_wait(self, rest: str) -> None:
        args = self._args("wait", rest)
        job = self._find(args.job)
        if job is None:
            raise UsageError(
                f"Job {args.job!r} is not running in this session; %batch attach {args.job} DF picks it up."
            )
        job.wait(args.timeout)

    def _cmd_attach(self, rest: str) -> None:
        from . import api

        args = self._args("attach", rest)
        df = self._frame(args.df) if args.df else None
        # `last` is this session's latest job when it has one, as for wait, retry and cancel
        # (another notebook of the folder may have made a job since); else the journal's.
        own = self._find(args.job) if args.job in ("last", "latest") else None
        job = api.attach(
            own.id if own is not None else args.job, df, client=self._client(), journal=self.journal_dir,
            settings=self._settings(), start=False, by_position=args.by_position,
        )
        self._run(job, wait=args.wait, frame=df, name=args.df)

    def _frame(self, name: str) -> Frame:
        df, column, _ = self._resolve_target(name)
        if column is not None:
            raise UsageError(f"Give the DataFrame alone here, not a column: {name.rsplit('.', 1)[0]}.")
        return df

    def _cmd_cancel(self, rest: str) -> None:
        from . import api

        args = self._args("cancel", rest)
        job = self._find(args.job)
        if job is None:
            readonly = self._readonly(args.job)
            if readonly.done:
                print(f"Job {readonly.id} already ended ({readonly.status.state}); nothing to cancel.")
                return
            job = api.attach(
                readonly.id, None, client=self._client(), journal=self.journal_dir, settings=self._settings(),
                start=False,
            )
            self._run(job, wait=False)
        if job.done:
            print(f"Job {job.id} already ended ({job.status.state}); nothing to cancel.")
            return
        job.cancel()
        print(f"Job {job.id}: cancel requested; what already finished is kept and merged.")

    def _cmd_retry(self, rest: str) -> None:
        args = self._args("retry", rest)
        jr = self._journal()
        live = self._find(args.job) if args.job in ("last", "latest") else None
        full = live.id if live is not None else jr.resolve(args.job)  # last: this session's, if any
        live = live or self._find(full)
        if args.df:
            df = self._frame(args.df)
        elif live is not None and live.df is not None:
            df = live.df
        else:
            raise UsageError(
                f"Which DataFrame? Job {full} was not run in this session: %batch retry {full} DF"
            )
        from .retry import read_origin, retry_failed

        job = retry_failed(
            full, df, client=self._client(), journal=jr, settings=self._settings(), start=False
        )
        if job.id == full:
            return  # nothing to retry (retry_failed said so); the ended job came back
        origin = read_origin(jr, job.id)  # a retry of a retry job retries the rows it retried
        print(f"Job {job.id}: retrying {job.status.n_rows:,} rows of job {origin.job_id if origin else full}.")
        self._run(job, wait=args.wait, frame=df, name=args.df)

    def _cmd_files(self, rest: str) -> Any:
        from .uploads import delete_job_files, job_files

        args = self._args("files", rest)
        jr = self._journal()
        if args.job in ("last", "latest") and not jr.job_ids():
            raise UsageError("No jobs yet: %%batch df ... starts one.")
        live = self._find(args.job) if args.job in ("last", "latest") else None
        full = live.id if live is not None else jr.resolve(args.job)  # last: this session's, if any
        if args.delete:
            print(f"Job {full}: {delete_job_files(full, client=self._client(), journal=jr)}")
            return None
        frame = job_files(full, journal=jr)
        if frame.empty:
            print(f"Job {full} shows no image or PDF; it uploaded nothing.")
            return None
        return frame

    def _cmd_trust(self, rest: str) -> None:
        args = self._args("trust", rest)
        jr = self._journal()
        full = jr.resolve(args.job)
        from .index_codec import PICKLED_INDEX

        had_pickle = jr.job_file(full, PICKLED_INDEX).is_file()
        index = jr.trust_pickled_index(full)
        if not had_pickle:
            print(f"Job {full} keeps its index as data already; nothing to convert.")
            return
        print(
            f"Job {full}: its index ({len(index):,} labels) was loaded from {PICKLED_INDEX}, which "
            "runs the code a pickle holds, as you asked, and is now stored as data; the pickle is "
            "removed. Its results can merge by index labels again."
        )

    def _cmd_eval(self, rest: str) -> Any:
        from .evaluation import evaluate

        args = self._args("eval", rest)
        df = self._eval_frame(args.df, args.out)
        pairs = [g.partition("=") for g in args.gold]
        if all(sep for _, sep, _ in pairs):
            gold: str | dict[str, str] = {name.strip(): col.strip() for name, _, col in pairs}
        elif len(pairs) == 1 and not pairs[0][1]:
            gold = args.gold[0]
        else:
            raise UsageError(
                f"--gold {' --gold '.join(args.gold)}: give one gold column (--gold label), or for a "
                "--schema job one FIELD=COL per field (--gold price=true_price --gold currency=true_currency)."
            )
        return evaluate(df, args.out, gold, cost=self._billed(df, args.out), tolerance=args.tolerance)

    def _cmd_compare(self, rest: str) -> Any:
        from .evaluation import compare

        args = self._args("compare", rest)
        df = self._eval_frame(args.df, args.a, args.b)
        return compare(
            df, args.a, args.b, args.gold, cost_a=self._billed(df, args.a), cost_b=self._billed(df, args.b)
        )

    def _eval_frame(self, name: str | None, *outs: str) -> pd.DataFrame:
        """The DataFrame named, or the latest one a job of this session wrote one of ``outs`` into."""
        if name is not None:
            return self._frame(name)
        for out in outs:
            for job in reversed(self._session_jobs()):
                filled = self._filled(job)
                if job.status.out == out and filled is not None:
                    return filled
        raise UsageError(
            f"Which DataFrame? No job of this session wrote {outs[0]!r}: name it, "
            f"%batch {'eval DF ' + outs[0] if len(outs) == 1 else 'compare DF ' + ' '.join(outs)} ..."
        )

    def _billed(self, df: pd.DataFrame, out: str) -> list[BatchJob] | None:
        """This session's ended jobs that wrote ``out`` into ``df`` (retries included): the
        report's cost is their bill; None when there are none (the report says so)."""
        jobs = [
            job for job in self._session_jobs()
            if self._filled(job) is df and job.status.out == out and job.status.actual_cost is not None
        ]
        return jobs or None

    @staticmethod
    def _filled(job: BatchJob) -> Frame | None:
        """The frame that holds a job's answers: a pandas frame is merged into in place; a
        Polars frame cannot change, so its answers are in the new frame the job gave."""
        from .errors import BatchMagicError
        from .frames import is_polars

        if not is_polars(job.df):
            return job.df
        try:
            return job.result()
        except BatchMagicError:  # not ended yet, or failed: no frame holds its answers
            return None

    def _cmd_simulator(self, rest: str) -> None:
        args = self._args("simulator", rest)
        if args.action == "stop":
            self.stop_simulator()
            return
        if args.action == "status":
            if self.simulator is None:
                print("No simulator is running: %batch simulator start starts one.")
            else:
                print(
                    f"Simulator running at {self.simulator.url}; its batches are kept in "
                    f"{str(self.simulator_state)!r} ({_batches(self.simulator)})."
                )
            return
        rates: dict[str, float] = {}
        for item in args.error_rate:
            cat, sep, value = item.partition("=")
            try:
                rates[cat.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not cat.strip():
                raise UsageError(f"--error-rate {item}: write CATEGORY=FRACTION, e.g. --error-rate overloaded_error=0.1")
        before, old_url = self.simulator, (self.simulator.url if self.simulator is not None else None)
        sim = self.start_simulator(
            processing_time=args.processing_time, error_rates=rates, state_dir=args.state, any_model=args.any_model
        )
        following = len(self._jobs_on_simulator())
        if sim is before:
            # A re-run of the set-up cell: nothing changes, every running job keeps its server.
            print(f"Simulator already running at {sim.url}, {_batches(sim)} kept; jobs of this session go there.")
            return
        if old_url is not None:
            where = "on the same port" if sim.url == old_url else f"on a new port (the old one, {old_url}, was taken)"
            jobs = f"; {_following(following)}" if following else ""
            print(
                f"Simulator restarted with the new settings at {sim.url}, {where}, "
                f"{_batches(sim)} kept{jobs}."
            )
            return
        jobs = f" {_following(following).capitalize()}." if following else ""
        print(
            f"Simulator running at {sim.url}: jobs of this session go there "
            f"(SIMULATED; no key, no cost). It keeps its batches in {str(self.simulator_state)!r}, "
            "so after a kernel restart `%batch simulator start` finds them again. "
            f"%batch simulator stop ends it.{jobs}"
        )

    # -- the embedded simulator -------------------------------------------------
    def start_simulator(
        self,
        *,
        processing_time: float | None = None,
        error_rates: dict[str, float] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        any_model: bool = False,
    ) -> Any:
        """Start this session's simulator. Its batches are kept in ``state_dir`` (default:
        ``simulator/`` in the journal folder), so a kernel restart does not lose them.

        Asked again with the same settings (a re-run set-up cell), the running simulator
        is kept. With other settings it restarts with the same kept batches on the port
        it had, so every job still running follows it; if that port was taken meanwhile,
        those jobs are pointed at the new one. Unknown model ids are refused with the
        API's 404 unless ``any_model``.
        """
        from .simulator import Options, Simulator

        state = Path(state_dir) if state_dir is not None else self._journal().root / "simulator"
        settings = _SimulatorSettings(
            state=state.resolve(),
            processing_time=processing_time,
            error_rates=tuple(sorted((error_rates or {}).items())),
            any_model=any_model,
        )
        if self.simulator is not None and settings == self._sim_settings:
            return self.simulator
        kwargs: dict[str, Any] = {
            "error_rates": dict(error_rates or {}),
            # As the API: an id the model table does not know is a 404, unless asked otherwise.
            "strict_models": None if any_model else True,
        }
        if processing_time is not None:
            kwargs["processing_time"] = processing_time
        try:
            Options(**kwargs)  # refused before the running simulator is stopped
        except (TypeError, ValueError) as exc:
            raise UsageError(f"The simulator refused these options: {exc}") from None
        running = self._jobs_on_simulator()
        old = self._sim_settings
        if self.simulator is not None and old is not None and running and settings.state != old.state:
            raise UsageError(
                f"{_count(len(running), 'job')} of this session ({', '.join(j.id for j in running)}) "
                f"{'still runs' if len(running) == 1 else 'still run'} on the simulator, whose batches are kept in {str(self.simulator_state)!r}; a "
                f"simulator keeping them in {str(state)!r} would not know them. Wait for them "
                "(%batch wait) or cancel them first, or start it again without --state."
            )
        self.stop_simulator(quiet=True)
        _private_dirs(state)  # it keeps the prompts, the user's data, as the journal does
        sim = self._bind(Simulator, state, kwargs)
        self.simulator = sim
        self.simulator_state = state
        self._sim_settings = settings
        self._sim_port = sim.port
        self._sim_client = None
        from .client import BatchClient

        for job in running:
            # The same batches, polled at once through this simulator (its port may have changed).
            job.repoint(BatchClient(self._client()))
        return sim

    def _bind(self, simulator_class: Any, state: Path, kwargs: dict[str, Any]) -> Any:
        """A started simulator, on the port this session's last one had if it is free."""
        ports = [self._sim_port, 0] if self._sim_port else [0]
        for port in ports:
            sim = simulator_class(port=port, state_dir=state, **kwargs)
            try:
                return sim.start()
            except OSError:
                if port == 0:
                    raise
        raise AssertionError("unreachable: port 0 either binds or raises")

    def _jobs_on_simulator(self) -> list[BatchJob]:
        """This session's jobs still running that were sent to the in-notebook simulator
        (one server whatever its port)."""
        from .job import session_jobs

        return [
            job for job in session_jobs()
            if not job.done and job.record.sent_to is not None and job.record.sent_to.builtin
        ]

    def stop_simulator(self, *, quiet: bool = False) -> None:
        sim, self.simulator = self.simulator, None
        self._sim_client = None
        self._sim_settings = None
        if sim is None:
            if not quiet:
                print("No simulator is running.")
            return
        sim.stop()
        if not quiet:
            running = self._jobs_on_simulator()
            later = (
                f" {_count(len(running), 'running job')} of this session "
                f"{'waits' if len(running) == 1 else 'wait'} for it: "
                "`%batch simulator start` brings it back on the same port."
                if running else ""
            )
            print(f"Simulator stopped.{later}")


@dataclass(frozen=True)
class _SimulatorSettings:
    """What ``%batch simulator start`` was asked for (None: the simulator's default)."""

    state: Path
    processing_time: float | None
    error_rates: tuple[tuple[str, float], ...]
    any_model: bool


def _batches(sim: Any) -> str:
    return _count(len(sim.batch_ids()), "batch", "batches")


def _following(n: int) -> str:
    return f"{_count(n, 'running job')} of this session {'follows' if n == 1 else 'follow'} it"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each readable by the owner only."""
    for folder in reversed([p for p in (path, *path.parents) if not p.exists()]):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask


def _status_text(status: JobStatus, fmt: Any) -> str:
    text = f"{status.job_id}: {fmt(status)}"
    if status.message and status.state is not DisplayState.DONE:
        text += f"\n    {status.message}"
    if status.error:
        text += f"\n    error: {status.error}"
    return text


# -- the extension -----------------------------------------------------------------
def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext batch_magic``: register the magics and read pyproject defaults."""
    from .config import apply_to

    magic = BatchMagic(ipython)
    ipython.register_magics(magic)
    apply_to(magic)


def unload_ipython_extension(ipython: Any) -> None:
    manager = ipython.magics_manager
    magic = manager.registry.pop("BatchMagic", None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("batch", None)
    if magic is not None:
        for view in magic.views.values():
            view.close()  # jobs still running stop printing into other cells
        magic.views.clear()
        magic.stop_simulator(quiet=True)
        with contextlib.suppress(ValueError):
            ipython.configurables.remove(magic)


__all__ = ["BatchMagic", "load_ipython_extension", "unload_ipython_extension"]
