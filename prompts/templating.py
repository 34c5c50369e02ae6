"""Jinja2 templates for prompt messages: sandboxed, strict about undefined variables.

Errors are `ValidationFailed` with the message index, line and column, so that the API
answers 400 with something a person can act on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from controlplane.errors import ValidationFailed

# Names a template may use without declaring them: filled by context assembly.
RESERVED_VARIABLES = frozenset({"documents"})

_environment = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line: int
    column: int


def _position_of(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _locate_syntax_error(source: str, error: jinja2.TemplateSyntaxError) -> TemplateProblem:
    """Jinja reports the line only; find the column by re-lexing up to the failing token."""
    offset = 0
    last_token_offset: int | None = None

    def recording_tokens() -> Iterator[tuple[int, str, str]]:
        nonlocal offset, last_token_offset
        for lineno, token_type, value in _environment.lexer.tokeniter(source, None):
            if token_type not in ("whitespace", "data") or value.strip():
                last_token_offset = offset
            offset += len(value)
            yield lineno, token_type, value

    parse_failed = False
    try:
        parser = Parser(_environment, source)
        parser.stream = jinja2.lexer.TokenStream(_environment.lexer.wrap(recording_tokens()), None, None)
        parser.parse()
    except jinja2.TemplateSyntaxError:
        parse_failed = True
    lines = source.split("\n")
    line_text = lines[error.lineno - 1] if 0 < error.lineno <= len(lines) else ""
    message = error.message or "syntax error"
    if parse_failed:
        at_end = last_token_offset is None or "end of template" in message or "unexpected char" in message
        point = offset if at_end or last_token_offset is None else last_token_offset
        line, column = _position_of(source, min(point, len(source)))
        if line == error.lineno:
            return TemplateProblem(message, line, column)
        if at_end:
            return TemplateProblem(message, error.lineno, len(line_text) + 1)
    else:
        # Parsed but did not compile (an unknown filter or test): point at the name it quotes.
        quoted = re.search(r"'([^']+)'", message)
        if quoted and quoted.group(1) in line_text:
            return TemplateProblem(message, error.lineno, line_text.index(quoted.group(1)) + 1)
    return TemplateProblem(message, error.lineno, len(line_text) - len(line_text.lstrip()) + 1)


@functools.lru_cache(maxsize=2048)
def compile_template(source: str) -> jinja2.Template:
    """Compiled once per distinct source in each process (versions are immutable)."""
    return _environment.from_string(source)


def check_template(source: str, *, where: str) -> set[str]:
    """Compile `source`; return the variables it uses. Raise naming line and column on error."""
    try:
        compile_template(source)
    except jinja2.TemplateSyntaxError as error:
        problem = _locate_syntax_error(source, error)
        raise ValidationFailed(
            f"{where}: template syntax error at line {problem.line}, column {problem.column}: {problem.message}",
            param=where,
            code="template_syntax_error",
        ) from None
    return set(template_variables(source))


@functools.lru_cache(maxsize=2048)
def template_variables(source: str) -> frozenset[str]:
    """The variables a (valid) template uses."""
    return frozenset(meta.find_undeclared_variables(_environment.parse(source)))


def check_variables(*, declared: Sequence[str], given: Mapping[str, Any]) -> None:
    missing = sorted(set(declared) - set(given))
    unexpected = sorted(set(given) - set(declared))
    problems = []
    if missing:
        problems.append(f"missing variables: {', '.join(missing)}")
    if unexpected:
        problems.append(
            f"unexpected variables: {', '.join(unexpected)} (the version declares: {', '.join(declared) or 'none'})"
        )
    if problems:
        raise ValidationFailed("; ".join(problems) + ".", param="variables", code="invalid_variables")


def render_template(source: str, variables: Mapping[str, Any], *, where: str) -> str:
    try:
        return compile_template(source).render(**variables)
    except jinja2.UndefinedError as error:
        raise ValidationFailed(f"{where}: {error.message}", param="variables", code="invalid_variables") from None
    except jinja2.exceptions.SecurityError as error:
        raise ValidationFailed(f"{where}: not allowed in a prompt template: {error}", param=where) from None
    except (TypeError, ValueError, ArithmeticError, jinja2.TemplateError) as error:
        raise ValidationFailed(f"{where}: the template failed to render: {error}", param=where) from None
