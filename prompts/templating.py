"""Jinja2 templates for prompt messages: sandboxed, strict about undefined variables, bounded.

Errors are `ValidationFailed` with the message index, line and column, so that the API
answers 400 with something a person can act on.

Bounded: one render can neither allocate without limit nor run for long. `{{ 'a' * 100000000 }}`
grew a server by 3 GB, and `'a' * 10000000` kept it busy for minutes after its client left.
So every operation that allocates in proportion to a number (`*`, `**`, `%` and `+`, `~`,
`str.format`/`ljust`/`center`/`replace`..., the `center`/`indent`/`format`/`replace` filters,
`range`, `lipsum`) is checked before it runs and refused when its result would exceed
PROMPT_RENDER_MAX_CHARS characters (or items); every call, loop iteration and intercepted
operator is a step, at most PROMPT_RENDER_MAX_STEPS per render, under a deadline of
PROMPT_RENDER_MAX_SECONDS; and everything a template writes, including blocks captured with
`{% set %}...{% endset %}`, counts against its output limit. Turning a value into text (printing it,
the text filters, `~`, `%`, `str.format`) is checked before the text is made, by `_text_weight`:
`{{ ['x' * 100000] * 1000 }}` is a small list but 100 MB of text. The checks are woven into the
template when it is compiled (`_BoundingTransformer`). Compiling is bounded too: a template
nested too deeply for Python's compiler is a 400, not a 500.
"""

from __future__ import annotations

import contextvars
import functools
import io
import pprint
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from django.conf import settings
from jinja2 import meta, nodes, pass_context
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from core.errors import ValidationFailed

# Names a template may use without declaring them: filled by context assembly.
RESERVED_VARIABLES = frozenset({"documents"})


class RenderLimitExceeded(SecurityError):
    """A template went over one of the render limits (raised inside Jinja, answered as a 400)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _RenderBudget:
    max_chars: int
    steps_left: int
    emitted_left: int
    deadline: float

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise RenderLimitExceeded(
                f"the template takes more than PROMPT_RENDER_MAX_STEPS ({settings.PROMPT_RENDER_MAX_STEPS:,}) "
                "steps (calls and loop iterations); loop over fewer items",
                code="template_too_complex",
            )
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"the template takes longer than PROMPT_RENDER_MAX_SECONDS "
                f"({settings.PROMPT_RENDER_MAX_SECONDS:g} s) to render",
                code="template_too_slow",
            )


_budget: contextvars.ContextVar[_RenderBudget | None] = contextvars.ContextVar("prompt_render_budget", default=None)


def _max_chars() -> int:
    return int(settings.PROMPT_RENDER_MAX_CHARS)


def _too_large(what: str, size: int) -> RenderLimitExceeded:
    return RenderLimitExceeded(
        f"{what} would be {size:,} characters or items; a template's values and output are limited to "
        f"PROMPT_RENDER_MAX_CHARS ({_max_chars():,})",
        code="template_output_too_large",
    )


def _step() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step()


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) and len(value) > _max_chars():
        raise _too_large(what, len(value))
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INTEGER_BITS:
        raise RenderLimitExceeded(
            f"{what} would be an integer of more than {_MAX_INTEGER_BITS:,} bits", code="template_output_too_large"
        )
    return value


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and not isinstance(width, bool) and width > _max_chars():
        raise _too_large(what, width)


_CONTAINERS: tuple[type, ...] = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    Namespace,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
# A value nested deeper is refused as too large to print: no prompt needs it, and a list that
# holds itself would otherwise be counted without end.
_MAX_DEPTH = 100


def _text_weight(value: Any, limit: int, *, indent_per_level: int | None = None) -> int:
    """About how many characters turning `value` into text writes (`str`, `repr`, JSON, pprint):
    the characters of its strings and numbers, at least one per item, and with `indent_per_level`
    a new line indented by its depth per item. A container's own text (brackets, separators,
    quotes, escapes) is not counted, so the real text is at most a small factor larger (about 4
    for separators and quotes, 12 for JSON's escapes of astral characters).

    Bounded: it stops once over `limit`; every item counts at least one, and a container met again
    (`[l, l, l]` of one large `l`, `[[l, l], [l, l]]`...) is counted from memory, so it looks at
    about `limit` items at most. Containers of one kind of scalar are counted in bulk, without a
    Python loop per item. Only concrete containers are looked into: a generator's text is its
    short repr, and iterating it would consume it."""
    if isinstance(value, (str, bytes, bytearray)):  # the common case, and what a template's values are
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return _scalar_weight(value)
    return _container_weight(value, limit, indent_per_level, 0, {})


def _container_weight(
    container: Any, limit: int, indent_per_level: int | None, depth: int, known: dict[Any, tuple[Any, int]]
) -> int:
    if depth > _MAX_DEPTH:
        return limit + 1
    key = id(container) if indent_per_level is None else (id(container), depth)
    if key in known:
        return known[key][1]
    items = _items_of(container)
    weight = 0 if indent_per_level is None else len(items) * (1 + depth * indent_per_level)
    kinds = set(map(type, items))
    if all(issubclass(kind, (str, bytes, bytearray)) for kind in kinds):
        weight += max(sum(map(len, items)), len(items))
    elif kinds == {int}:
        weight += sum(map(int.bit_length, items)) * 3 // 10 + len(items)  # their decimal digits, about
    elif kinds == {float}:
        weight += sum(map(len, map(repr, items)))
    else:
        for item in items:
            if isinstance(item, (str, bytes, bytearray)):
                weight += len(item) or 1
            elif isinstance(item, _CONTAINERS):
                weight += 1 + _container_weight(item, limit - weight, indent_per_level, depth + 1, known)
            else:
                weight += _scalar_weight(item)
            if weight > limit:
                return weight
    known[key] = (container, weight)  # holding the container keeps its id from being reused
    return weight


def _items_of(container: Any) -> Sequence[Any]:
    if isinstance(container, (list, tuple)):
        return container
    if isinstance(container, dict):
        return [*container.keys(), *container.values()]
    if isinstance(container, Namespace):  # its repr holds its attributes
        attributes = object.__getattribute__(container, "_Namespace__attrs")
        return [*attributes.keys(), *attributes.values()]
    return list(container)


def _scalar_weight(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() * 3 // 10 + 1  # its decimal digits, about
    if isinstance(value, float):
        return len(repr(value))
    return 1


def _too_much_text(what: str) -> RenderLimitExceeded:
    return RenderLimitExceeded(
        f"{what} would be more than {_max_chars():,} characters; a template's values and output are limited to "
        f"PROMPT_RENDER_MAX_CHARS ({_max_chars():,})",
        code="template_output_too_large",
    )


def _check_text(what: str, values: Iterable[Any], *, extra: int = 0, indent_per_level: int | None = None) -> None:
    """Refuse, before it is made, the text of `values` (plus `extra` characters) over the limit."""
    limit = _max_chars()
    total = extra
    for value in values:
        if total > limit:
            break
        total += _text_weight(value, limit - total, indent_per_level=indent_per_level)
    if total > limit:
        raise _too_much_text(what)


# Widths in printf-style (`%10s`, `%*s`) and format-style (`{:>10}`, `{:{}}`) specifications.
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")
_DIGITS = re.compile(r"\d+")
_MAX_INTEGER_BITS = 64_000  # about 19,000 decimal digits: far past any number a prompt prints


def _check_format(template: str, arguments: Sequence[Any], *, printf: bool) -> None:
    """Refuse a format string whose widths or precisions (literal or taken from the arguments)
    would pad a value past the limit."""
    if printf:
        widths = [group for match in _PRINTF_SPEC.finditer(template) for group in match.groups() if group]
    else:
        widths = [digits for field in _FORMAT_FIELD.findall(template) for digits in _DIGITS.findall(field)]
        if any(field.count("{") > 1 for field in _FORMAT_FIELD.findall(template)):
            widths.append("*")
    for width in widths:
        if width == "*":
            for argument in arguments:
                _check_width(argument, "a width given to a format")
        elif len(width) > 9 or int(width) > _max_chars():
            raise _too_large("a formatted value", int(width) if len(width) <= 30 else 10**30)


def _format_arguments(right: Any) -> list[Any]:
    if isinstance(right, tuple):
        return list(right)
    if isinstance(right, Mapping):
        return list(right.values())
    return [right]


_PRINTF_KEY = re.compile(r"%\(([^)]*)\)")
_FORMATTER = string.Formatter()
_FIELD_NAME = re.compile(r"[^.\[]*")


def _printf_values(template: str, right: Any) -> list[Any]:
    """What `template % right` turns into text: a mapping's values once per `%(key)s` naming them."""
    if isinstance(right, Mapping):
        return [right[key] for key in _PRINTF_KEY.findall(template) if key in right]
    return _format_arguments(right)


def _format_values(template: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    """What `template.format(*args, **kwargs)` turns into text: an argument once per field naming it
    (`'{0}{0}{0}'` writes its argument three times); a field's `.attr` or `[key]` counts as all of it."""
    values: list[Any] = []
    automatic = 0
    try:
        for _, field, specification, _ in _FORMATTER.parse(template):
            if field is None:
                continue
            name = _FIELD_NAME.match(field).group()  # type: ignore[union-attr]  # matches any string
            if name == "":
                name, automatic = str(automatic), automatic + 1
            if name.isdigit():
                if int(name) < len(args):
                    values.append(args[int(name)])
            elif name in kwargs:
                values.append(kwargs[name])
            automatic += (specification or "").count("{")  # `{:{}}` takes its width from the next argument
    except ValueError:  # a malformed format string: str.format refuses it too
        pass
    return values


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sequence_types = (str, bytes, list, tuple)
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, sequence_types) and isinstance(count, int):
                _check_width(len(sequence) * max(count, 0), "the repeated value")
                # ['x' * 100000] * 1000: a small list, but a large text once printed
                is_list = isinstance(sequence, (list, tuple)) and count > 1
                if is_list and _text_weight(sequence, _max_chars() // count) * count > _max_chars():
                    raise _too_much_text("the repeated value")
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > _MAX_INTEGER_BITS
        ):
            _check_size(1 << (_MAX_INTEGER_BITS + 1), "the product")
    elif operator == "**":
        is_integer_power = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
        if is_integer_power and (right > _MAX_INTEGER_BITS or abs(left).bit_length() * right > _MAX_INTEGER_BITS):
            _check_size(1 << (_MAX_INTEGER_BITS + 1), "the power")
    elif operator == "+":
        if isinstance(left, sequence_types) and isinstance(right, sequence_types):
            _check_width(len(left) + len(right), "the joined value")
    elif operator == "%" and isinstance(left, (str, bytes, bytearray)):
        specification = left if isinstance(left, str) else left.decode("latin-1")  # b'%*d' pads as '%*d' does
        _check_format(specification, _format_arguments(right), printf=True)
        _check_text("the text formatted by '%'", _printf_values(specification, right), extra=len(left))


# Methods whose result can be far larger than their object and arguments.
_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


def _check_method_call(function: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    target = getattr(function, "__wrapped__", function)  # str.format, wrapped by the sandbox
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if isinstance(owner, int) and name == "to_bytes":  # (1).to_bytes(10**9) writes a gigabyte of zeros
        _check_width(args[0] if args else kwargs.get("length", 1), "int.to_bytes()")
        return
    if not isinstance(owner, (str, bytes, bytearray)):  # 'a'.encode() has the same padding methods
        return
    kind = type(owner).__name__
    if name in _PADDING_METHODS and args:
        _check_width(args[0], f"{kind}.{name}()")
    elif name == "expandtabs":
        tab_size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab_size, int):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            _check_width(len(owner) + tabs * max(tab_size, 0), f"{kind}.expandtabs()")
    elif name == "replace" and len(args) >= 2 and all(isinstance(arg, type(owner)) for arg in args[:2]):
        _check_replace(owner, args[0], args[1])
    elif name in ("format", "format_map") and isinstance(owner, str):
        arguments = [*args, *kwargs.values()]
        if name == "format_map" and args and isinstance(args[0], Mapping):
            arguments = list(args[0].values())
        _check_format(owner, arguments, printf=False)
        if name == "format_map":
            values = _format_values(owner, (), args[0] if args and isinstance(args[0], Mapping) else {})
        else:
            values = _format_values(owner, args, kwargs)
        _check_text(f"the text of str.{name}()", values, extra=len(owner))
    elif name == "translate" and isinstance(owner, str) and args and isinstance(args[0], Mapping):
        # 'a' * 1000000 translated by {97: 'x' * 900000}: each character may become a long text
        longest = max((_text_weight(new, _max_chars()) for new in args[0].values()), default=1)
        _check_width(len(owner) * max(longest, 1), "str.translate()")
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)):  # ''.join(['x' * 90000] * 5000): small parts, a large whole
            joined = sum(len(item) for item in items if isinstance(item, (str, bytes, bytearray)))
            _check_width(joined + len(owner) * max(len(items) - 1, 0), f"{kind}.join()")


def _check_replace(text: str | bytes | bytearray, old: Any, new: Any) -> None:  # old and new: of text's type
    occurrences = text.count(old) if old else len(text) + 1
    _check_width(len(text) + occurrences * max(len(new) - len(old), 0), "the replaced text")


# Built-in filters that turn their value (and their arguments) into text.
_TEXT_FILTERS = frozenset(
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "join",
        "lower",
        "pprint",
        "replace",
        "safe",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
        "xmlattr",
    }
)


def _check_filter_text(name: str, args: list[Any], kwargs: dict[str, Any], value_index: int) -> None:
    """Refuse a text filter whose text would be over the limit, before it makes it. May replace a
    generator in `args` by the list of its items (which the filter would have consumed anyway)."""
    what = f"the text of the '{name}' filter"
    value = args[value_index] if len(args) > value_index else None
    rest = args[value_index + 1 :]
    if name in ("join", "urlencode") and isinstance(value, Iterator):  # items|map(...)|join
        value = args[value_index] = list(value)
    if name == "join" and isinstance(value, (list, tuple)):
        separator = rest[0] if rest else kwargs.get("d", "")
        attribute = rest[1] if len(rest) > 1 else kwargs.get("attribute")
        if attribute is not None:  # join(attribute='name'): what is joined is each item's attribute
            getter = jinja2.filters.make_attrgetter(args[0].environment, attribute)
            value = args[value_index] = [getter(item) for item in value]
            del args[value_index + 2 :]
            kwargs.pop("attribute", None)
        separators = _text_weight(separator, _max_chars()) * max(len(value) - 1, 0)
        _check_text(what, value, extra=separators)
    elif name == "format" and isinstance(value, str):
        _check_text(what, _printf_values(value, kwargs or tuple(rest)), extra=len(value))
    elif name == "tojson":
        indent = rest[0] if rest else kwargs.get("indent")
        per_level = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else None
        _check_text(what, [value], indent_per_level=None if per_level is None else max(per_level, 0))
    elif name == "pprint":
        _check_text(what, [value], indent_per_level=1)
    else:
        _check_text(what, [value, *rest, *kwargs.values()])
    if name == "wordwrap" and isinstance(value, str):  # each line ends with `wrapstring`
        width = rest[0] if rest else kwargs.get("width", 79)
        wrapstring = rest[2] if len(rest) > 2 else kwargs.get("wrapstring")
        if isinstance(width, int) and isinstance(wrapstring, str):
            # Two lines in a row are longer than `width`, or the first would have taken the second's first word.
            lines = 2 * len(value) // max(width, 1) + value.count("\n") + 2
            _check_width(len(value) + lines * len(wrapstring), "the wrapped text")


class _BoundedStream(io.StringIO):
    """pprint's output, refused as it is written once over the limit: pprint indents a dict's
    values by the width of their key, so its text can be far larger than its value's."""

    def __init__(self) -> None:
        super().__init__()
        self.characters_left = _max_chars()

    def write(self, text: str) -> int:
        self.characters_left -= len(text)
        if self.characters_left < 0:
            raise _too_much_text("the text of the 'pprint' filter")
        return super().write(text)


def _bounded_pformat(value: Any) -> str:
    """`pprint.pformat(value)`, as Jinja's `pprint` filter writes it, into a bounded stream."""
    stream = _BoundedStream()
    pprint.PrettyPrinter(stream=stream).pprint(value)
    return stream.getvalue()[:-1]  # pprint() ends with a new line, pformat() does not


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter that refuses amplifying arguments and oversized results."""
    pass_arg = getattr(function, "jinja_pass_arg", None)
    if name == "pprint":
        function = _bounded_pformat

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value_index = 1 if pass_arg is not None else 0
        if name in _TEXT_FILTERS:
            arguments = list(args)
            _check_filter_text(name, arguments, kwargs, value_index)
            args = tuple(arguments)
        rest = args[value_index + 1 :]
        value = args[value_index] if len(args) > value_index else None
        if name == "batch" and len(rest) > 1 and rest[1] is not None:  # pads the last batch with fill_with
            _check_width(rest[0], "the 'batch' filter's batch size")
        elif name == "batch" and kwargs.get("fill_with") is not None:
            _check_width(rest[0] if rest else kwargs.get("linecount"), "the 'batch' filter's batch size")
        elif name == "slice":  # [1]|slice(100000000)|list: as many lists as slices
            _check_width(rest[0] if rest else kwargs.get("slices"), "the 'slice' filter's number of slices")
        if name == "center":
            _check_width(rest[0] if rest else kwargs.get("width"), "the centred text")
        elif name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            width_chars = len(width) if isinstance(width, str) else width
            if isinstance(width_chars, int):
                _check_width(len(value) + (value.count("\n") + 1) * max(width_chars, 0), "the indented text")
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            _check_replace(value, str(rest[0]), str(rest[1]))
        elif name == "format" and isinstance(value, str):
            _check_format(value, [*rest, *kwargs.values()], printf=True)
        return _check_size(function(*args, **kwargs), f"the result of the '{name}' filter")

    return bounded


def _bounded_range(*args: int) -> range:
    values = range(*args)
    _check_width(len(values), "range()")
    return values


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    _check_width(n * max, "lipsum()")
    return str(jinja2.utils.generate_lorem_ipsum(n=n, html=html, min=min, max=max))


@pass_context
def _emit(context: Context, value: Any) -> str:
    """Everything a template writes passes here: counted against the budget."""
    if isinstance(value, str):
        text = value
    else:
        _check_text("the printed value", [value])
        text = str(value)
    budget = _budget.get()
    if budget is not None:
        budget.emitted_left -= len(text)
        if budget.emitted_left < 0:
            raise _too_large("the template's output", budget.max_chars - budget.emitted_left)
    return text


@pass_context
def _concat(context: Context, values: list[Any]) -> str:
    """The `~` operator, checked for size before it joins."""
    _check_text("the text joined by '~'", values)
    texts = [value if isinstance(value, str) else str(value) for value in values]
    _check_width(sum(len(text) for text in texts), "the text joined by '~'")
    return "".join(texts)


@pass_context
def _iterate(context: Context, iterable: Any) -> Iterator[Any]:
    """A `{% for %}` loop's items, one step each."""
    for item in iterable:
        _step()
        yield item


_EMIT, _CONCAT, _ITERATE = "_controlplane_emit", "_controlplane_concat", "_controlplane_iterate"


def _filter_node(name: str, node: nodes.Node) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _BoundingTransformer(NodeTransformer):
    """Weaves the checks into a parsed template: every output through `_emit`, every `~`
    through `_concat`, every loop through `_iterate`."""

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [
            _filter_node(_EMIT, nodes.Const(child.data, lineno=child.lineno))
            if isinstance(child, nodes.TemplateData)
            else _filter_node(_EMIT, child)
            for child in node.nodes
        ]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _filter_node(_CONCAT, nodes.List(node.nodes, lineno=node.lineno))

    def visit_For(self, node: nodes.For) -> nodes.For:
        if node.recursive:
            raise jinja2.TemplateSyntaxError(
                "recursive loops are not allowed in prompt templates", node.lineno or 1, None, None
            )
        self.generic_visit(node)
        node.iter = _filter_node(_ITERATE, node.iter)
        return node


class BoundedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, function) for name, function in self.filters.items()}
        self.filters.update({_EMIT: _emit, _CONCAT: _concat, _ITERATE: _iterate})
        self.globals.update(range=_bounded_range, lipsum=_bounded_lipsum)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        template = super()._parse(source, name, filename)
        _BoundingTransformer().visit(template)
        return template

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return _check_size(super().call_binop(context, operator, left, right), f"the result of '{operator}'")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        _check_method_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        owner = getattr(__obj, "__self__", None)  # list.extend, dict.update... grow their object
        if isinstance(owner, (list, dict, set)):
            _check_size(owner, "the updated value")
        return _check_size(result, "the call's result")


_environment = BoundedEnvironment(
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
    except (RecursionError, SyntaxError, MemoryError):
        raise _nested_too_deeply(where) from None
    except TypeError as error:  # Jinja folds constants while compiling: {{ {[]: 1} }} is unhashable
        raise ValidationFailed(
            f"{where}: the template cannot be compiled: {error}", param=where, code="template_syntax_error"
        ) from None
    return set(template_variables(source))


def _nested_too_deeply(where: str) -> ValidationFailed:
    # Jinja's parser recurses per nested expression, and Python's compiler refuses more than
    # 20 nested blocks: both end in an error that is the template's, not the server's.
    return ValidationFailed(
        f"{where}: the template nests blocks or expressions too deeply to compile (at most about 20 nested "
        "{% for %}/{% if %} blocks and a few hundred nested brackets or filters); flatten it.",
        param=where,
        code="template_too_deeply_nested",
    )


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
    """Render within the limits of the module docstring; a template over one is a 400 naming it."""
    max_chars = _max_chars()
    budget = _RenderBudget(
        max_chars=max_chars,
        steps_left=settings.PROMPT_RENDER_MAX_STEPS,
        # Captured blocks are written twice (captured, then printed): room for that.
        emitted_left=4 * max_chars,
        deadline=time.monotonic() + settings.PROMPT_RENDER_MAX_SECONDS,
    )
    token = _budget.set(budget)
    try:
        parts: list[str] = []
        size = 0
        # Chunk by chunk, so that a template writing without end is stopped as it goes.
        for part in compile_template(source).generate(**variables):
            size += len(part)
            if size > max_chars:
                raise _too_large("the rendered text", size)
            parts.append(part)
        return "".join(parts)
    except RenderLimitExceeded as error:
        raise ValidationFailed(f"{where}: {error}.", param=where, code=error.code) from None
    except jinja2.UndefinedError as error:
        raise ValidationFailed(f"{where}: {error.message}", param="variables", code="invalid_variables") from None
    except jinja2.exceptions.SecurityError as error:
        raise ValidationFailed(f"{where}: not allowed in a prompt template: {error}", param=where) from None
    except RecursionError:
        raise ValidationFailed(
            f"{where}: the template calls its macros too deeply (recursion); bound the recursion.",
            param=where,
            code="template_too_complex",
        ) from None
    # What the template's own calls raise: '{x}'.format() and [].pop() (LookupError), 'a'.encode('x')
    # (LookupError), cycler() with no items (RuntimeError), truncate(-5) (Jinja asserts its arguments).
    except (
        TypeError,
        ValueError,
        ArithmeticError,
        LookupError,
        RuntimeError,
        AssertionError,
        jinja2.TemplateError,
    ) as error:
        raise ValidationFailed(f"{where}: the template failed to render: {error}", param=where) from None
    except SyntaxError:
        raise _nested_too_deeply(where) from None
    finally:
        _budget.reset(token)
