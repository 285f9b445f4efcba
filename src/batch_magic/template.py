"""Compile a prompt template and render it for each row.

Templates are Jinja2 with ``StrictUndefined``: ``{{ column }}``, filters and
conditionals work, single braces stay literal (JSON in a prompt is safe). A
name is a column or a named level of the index (a column wins over a level of
the same name); any other name fails before anything is sent. Templates made only of
text and bare ``{{ name }}`` substitutions (the common case) are rendered by a
fast path that gives the same text as Jinja2 at a fraction of the cost, which
matters at a million rows.

Images and PDFs go where the prompt needs them: ``{{ image(photo) }}``,
``{{ pdf(invoice) }}`` or ``{{ media(attachment) }}`` (see ``media.py``). These
names are functions, not columns; a template that calls them renders through
Jinja2 with a ``MediaCollector`` that reads each row's file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.sandbox
import numpy as np

from .errors import TemplateError
from .media import FUNCTIONS as MEDIA_FUNCTIONS
from .media import MediaCollector

#: Names every template may use besides the columns.
ROW_NAME = "row"


def _environment() -> jinja2.Environment:
    """Every template renders in Jinja2's immutable sandbox, the user's own cell's too: a
    template read back from a journal that came from elsewhere (a retry renders the one
    in the manifest) must reach no Python internals (``{{ text.__class__ }}``), call no
    method that changes a value, and format no string that does either. Filters and the
    methods of strings (``{{ name.title() }}``) work as in plain Jinja2."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    # No global names (``range``, ``cycler``, ``namespace``...): every name a template
    # uses is a column, a level of the index or a media function, checked as such.
    env.globals.clear()
    return env


@dataclass(frozen=True)
class Template:
    """A compiled prompt template and the column names it reads."""

    source: str
    variables: frozenset[str]
    _compiled: jinja2.Template = field(repr=False, compare=False)
    # For the fast path: alternating literal text and variable names, or None.
    _parts: tuple[tuple[str, str | None], ...] | None = field(repr=False, compare=False)
    #: The media functions it calls (``image``, ``pdf``, ``media``); empty for text alone.
    media_functions: frozenset[str] = frozenset()

    @classmethod
    def compile(cls, source: str) -> Template:
        if not source or not source.strip():
            raise TemplateError(
                "The prompt template is empty: write the prompt in the cell body, "
                "with {{ column }} where each row's value goes."
            )
        env = _environment()
        try:
            ast = env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            line = source.splitlines()[exc.lineno - 1] if exc.lineno else ""
            raise TemplateError(
                f"The prompt template has a syntax error on line {exc.lineno}: {exc.message}"
                f" (line: {line.strip()!r}). Placeholders look like {{{{ column }}}}."
            ) from None
        names = set(jinja2.meta.find_undeclared_variables(ast))
        called = {
            call.node.name for call in ast.find_all(jinja2.nodes.Call) if isinstance(call.node, jinja2.nodes.Name)
        }
        media_functions = frozenset(called & set(MEDIA_FUNCTIONS))
        names -= media_functions
        row_keys = _row_keys(ast)
        if ROW_NAME in names and row_keys is not None:
            names.discard(ROW_NAME)
            names.update(row_keys)
        return cls(source, frozenset(names), env.from_string(ast), _simple_parts(ast), media_functions)

    @classmethod
    def instructions_then_column(cls, instructions: str, column: str, *, media: bool = False) -> Template:
        """The ``%%batch df.column`` form: the cell's text, then the column's value; for a
        column of images or PDFs (``media=True``), the file first, then the text (the
        order the vision docs advise)."""
        body = instructions.strip()
        value = column if column.isidentifier() else "row[%r]" % column
        if media:
            expr = "{{ media(%s) }}" % value
            return cls.compile(f"{expr}\n\n{body}" if body else expr)
        expr = "{{ %s }}" % value
        return cls.compile(f"{body}\n\n{expr}" if body else expr)

    def check_columns(self, columns: Sequence[Any], index_names: Sequence[Any] = ()) -> list[str]:
        """Fail early, naming what is unknown and what exists; return the names used.

        A name may be a column or a named level of the index (``index_names``,
        None for an unnamed level); a column wins over a level of the same name.
        """
        names = {str(c) for c in columns}
        levels = [str(n) for n in index_names if n is not None and str(n) not in names]
        known = names | set(levels)
        unknown = sorted(v for v in self.variables if v not in known and v != ROW_NAME)
        if unknown:
            shown = ", ".join(repr(str(c)) for c in list(columns)[:30])
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                if close:
                    hints.append(f"Did you mean {close[0]!r} for {name!r}?")
            hint = (" " + " ".join(hints)) if hints else ""
            where = f"Columns: {shown}."
            if levels:
                where += f" Index levels: {', '.join(map(repr, levels))}."
            if not hints:
                where += _unnamed_index_hint(index_names, unknown[0])
            raise TemplateError(
                f"The template uses {', '.join(repr(u) for u in unknown)}, which "
                f"{'is neither a column' if len(unknown) == 1 else 'are neither columns'} of the "
                f"DataFrame nor {'a level' if len(unknown) == 1 else 'levels'} of its index.{hint} "
                f"{where} A column whose name is not a Python identifier can be written "
                "{{ row['column name'] }}."
            )
        return sorted(v for v in self.variables if v != ROW_NAME)

    @property
    def needs_whole_row(self) -> bool:
        """True when ``row`` is indexed by something we cannot read statically."""
        return ROW_NAME in self.variables

    @property
    def never_blank(self) -> bool:
        """True when no row can render to blank text (the template has visible literal text)."""
        return self._parts is not None and any(
            name is None and text.strip() for text, name in self._parts
        )

    @property
    def is_simple(self) -> bool:
        return self._parts is not None

    def render(self, values: Mapping[str, Any]) -> str:
        """Render one row; ``values`` maps column names (and ``row``) to values."""
        if self._parts is not None:
            return "".join(
                text if name is None else str(values[name]) for text, name in self._parts
            )
        try:
            return self._compiled.render(values)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"The template could not be rendered: {exc}.") from None
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(
                f"The template reaches into Python's internals ({exc}), which prompt templates "
                "may not; use the columns' values, filters and string methods only."
            ) from None
        except Exception as exc:  # a filter or expression failed on this row's value
            raise TemplateError(
                f"The template failed on a row: {type(exc).__name__}: {exc}."
            ) from None

    @property
    def uses_media(self) -> bool:
        return bool(self.media_functions)

    def render_columns(
        self, columns: Mapping[str, Iterable[Any]], n: int, *, media: MediaCollector | None = None
    ) -> list[str]:
        """Render ``n`` rows from column-wise values (fast path when possible).

        A template that shows media needs ``media``, which reads each row's files
        and collects them (and the rows whose files cannot be sent)."""
        if self._parts is not None:
            return _render_simple(self._parts, columns, n)
        functions: dict[str, Any] = {}
        if self.media_functions:
            if media is None:
                raise TemplateError("This template shows images or PDFs; render it through a plan.")
            functions = {name: media.function(name) for name in self.media_functions}
        names = [name for name in columns if name not in functions]
        lists = [list(columns[name]) for name in names]
        out = []
        for i in range(n):
            values = {name: col[i] for name, col in zip(names, lists)}
            values[ROW_NAME] = values
            values.update(functions)
            if media is not None:
                media.row = i
            out.append(self.render(values))
        return out


def _unnamed_index_hint(index_names: Sequence[Any], example: str) -> str:
    """How to name the index, when some level of it has no name."""
    unnamed = [i for i, n in enumerate(index_names) if n is None]
    if not unnamed:
        return ""
    if len(index_names) == 1:
        return (
            f" The index has no name; to use it as {{{{ {example} }}}}, name it: "
            f"df.index.name = {example!r} (or df = df.rename_axis({example!r}))."
        )
    which = ", ".join(str(i) for i in unnamed)
    return (
        f" Index level{'s' if len(unnamed) > 1 else ''} {which} {'have' if len(unnamed) > 1 else 'has'} "
        "no name; name the levels to use them: df.index.names = [...] (or df = df.rename_axis([...]))."
    )


def _strings(values: Iterable[Any], n: int) -> list[str]:
    """``str()`` of the first ``n`` values, as a list (strings are used as they are)."""
    # An object array's tolist() gives its own elements; other arrays keep numpy scalars.
    if isinstance(values, np.ndarray) and values.dtype.kind == "O":
        vals: list[Any] = values.tolist()
    else:
        vals = list(values)
    if len(vals) > n:
        vals = vals[:n]
    if all(type(v) is str for v in vals):
        return vals
    return [str(v) for v in vals]


def _render_simple(
    parts: tuple[tuple[str, str | None], ...], columns: Mapping[str, Iterable[Any]], n: int
) -> list[str]:
    """Text and bare names, rendered column-wise: no per-row Python beyond one concatenation."""
    pieces: list[str | list[str]] = []
    for text, name in parts:
        piece: str | list[str] = text if name is None else _strings(columns[name], n)
        if isinstance(piece, str) and pieces and isinstance(pieces[-1], str):
            pieces[-1] += piece
        elif not (isinstance(piece, str) and not piece):
            pieces.append(piece)
    lists = [p for p in pieces if not isinstance(p, str)]
    if not lists:
        return ["".join(p for p in pieces if isinstance(p, str))] * n
    if len(lists) == 1 and len(pieces) <= 3:  # the common case: text {{ column }} text
        first, last = pieces[0], pieces[-1]
        pre = first if isinstance(first, str) else ""
        post = last if isinstance(last, str) else ""
        return [pre + v + post for v in lists[0]]
    return list(map("".join, zip(*(repeat(p) if isinstance(p, str) else p for p in pieces))))


def _simple_parts(ast: jinja2.nodes.Template) -> tuple[tuple[str, str | None], ...] | None:
    """Literal text and bare names only, or None when Jinja2 must render it."""
    parts: list[tuple[str, str | None]] = []
    for node in ast.body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, jinja2.nodes.TemplateData):
                parts.append((child.data, None))
            elif isinstance(child, jinja2.nodes.Name) and child.name != ROW_NAME:
                parts.append(("", child.name))
            elif (key := _row_key(child)) is not None:
                parts.append(("", key))
            else:
                return None
    return tuple(parts)


def _row_key(node: jinja2.nodes.Node) -> str | None:
    """The column of ``row['name']`` (or ``row.name``), else None."""
    if isinstance(node, jinja2.nodes.Getitem):
        target, arg = node.node, node.arg
        if isinstance(arg, jinja2.nodes.Const) and isinstance(arg.value, str):
            key = arg.value
        else:
            return None
    elif isinstance(node, jinja2.nodes.Getattr):
        target, key = node.node, node.attr
    else:
        return None
    if isinstance(target, jinja2.nodes.Name) and target.name == ROW_NAME:
        return key
    return None


def _row_keys(ast: jinja2.nodes.Template) -> set[str] | None:
    """Every column read through ``row``, or None if some access is dynamic."""
    keys: set[str] = set()
    for name in ast.find_all(jinja2.nodes.Name):
        if name.name != ROW_NAME:
            continue
        found = False
        for node in ast.find_all((jinja2.nodes.Getitem, jinja2.nodes.Getattr)):
            if getattr(node, "node", None) is name:
                key = _row_key(node)
                if key is None:
                    return None
                keys.add(key)
                found = True
        if not found:
            return None  # ``row`` used whole (e.g. {{ row | tojson }})
    return keys
