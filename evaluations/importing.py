"""JSONL and CSV files turned into items, all or nothing: every bad line is reported as
`line N: what is wrong` (up to MAX_REPORTED_ERRORS of them, with the total), and no item is
stored unless every line is good.

CSV columns: input (required; a JSON object, or plain text = one user message), expected_output,
expected_facts (a JSON list, or one fact per line of the cell), context (a JSON list), tags
(comma-separated or a JSON list), metadata (a JSON object), classification. Empty cells are absent.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from core.errors import PayloadTooLarge, ValidationFailed
from evaluations import limits
from evaluations.items import ITEM_FIELDS, ItemData, parse_item


class ImportFailed(ValidationFailed):
    default_code = "import_invalid"

    def __init__(self, errors: list[str], *, total: int) -> None:
        shown = "; ".join(errors)
        more = f" (and {total - len(errors)} more bad lines)" if total > len(errors) else ""
        super().__init__(f"Nothing was imported: {total} bad line(s). {shown}{more}", param="file")
        self.errors = errors
        self.total = total


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def _decode(data: bytes) -> str:
    if len(data) > limits.MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            f"The file has {len(data):,} bytes; at most {limits.MAX_IMPORT_BYTES:,} may be imported at once. Split it.",
            param="file",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ImportFailed([f"line {line}: not UTF-8 text (byte {error.start})"], total=1) from None


class _Collector:
    def __init__(self) -> None:
        self.items: list[tuple[int, ItemData]] = []
        self.errors: list[str] = []
        self.total_errors = 0

    def bad(self, line: int, message: str) -> None:
        self.total_errors += 1
        if len(self.errors) < limits.MAX_REPORTED_ERRORS:
            self.errors.append(f"line {line}: {message}")

    def add(self, line: int, raw: Any) -> None:
        try:
            self.items.append((line, parse_item(raw)))
        except ValidationFailed as error:
            self.bad(line, error.message)

    def result(self) -> list[tuple[int, ItemData]]:
        if self.total_errors:
            raise ImportFailed(self.errors, total=self.total_errors)
        if not self.items:
            raise ValidationFailed("The file holds no items.", param="file")
        if len(self.items) > limits.MAX_ITEMS_PER_BATCH:
            raise ValidationFailed(
                f"The file holds {len(self.items):,} items; at most {limits.MAX_ITEMS_PER_BATCH:,} may be imported at "
                "once. Split it.",
                param="file",
            )
        return self.items


def parse_jsonl(data: bytes) -> list[tuple[int, ItemData]]:
    """(line number, item) for each non-blank line."""
    collector = _Collector()
    for number, line in enumerate(_decode(data).splitlines(), start=1):
        if not line.strip():
            continue
        if len(collector.items) + collector.total_errors >= limits.MAX_ITEMS_PER_BATCH:
            collector.bad(number, f"more than {limits.MAX_ITEMS_PER_BATCH:,} lines; split the file")
            break
        if len(line) > limits.MAX_IMPORT_LINE_CHARS:
            collector.bad(number, f"{len(line):,} characters; a line may have at most {limits.MAX_IMPORT_LINE_CHARS:,}")
            continue
        try:
            raw = _loads(line)
        except (ValueError, RecursionError) as error:
            collector.bad(number, f"not valid JSON ({str(error)[:150]})")
            continue
        collector.add(number, raw)
    return collector.result()


def _cell_json(value: str, column: str, *, list_fallback: str | None = None) -> Any:
    stripped = value.strip()
    if list_fallback is not None and not stripped.startswith("["):
        parts = stripped.split(list_fallback)
        return [part.strip() for part in parts if part.strip()]
    try:
        return _loads(stripped)
    except (ValueError, RecursionError):
        raise ValidationFailed(f"{column}: not valid JSON", param=column) from None


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or value == "":
            continue
        if column == "input":
            raw["input"] = _cell_json(value, column) if value.lstrip().startswith("{") else value
        elif column == "expected_facts":
            raw[column] = _cell_json(value, column, list_fallback="\n")
        elif column == "tags":
            raw[column] = _cell_json(value, column, list_fallback=",")
        elif column in ("context", "metadata"):
            raw[column] = _cell_json(value, column)
        else:
            raw[column] = value
    return raw


def parse_csv(data: bytes) -> list[tuple[int, ItemData]]:
    """(line number where the record starts, item) for each record after the header."""
    collector = _Collector()
    reader = csv.DictReader(io.StringIO(_decode(data), newline=""))
    try:
        columns = reader.fieldnames or []
    except csv.Error as error:
        raise ImportFailed([f"line 1: not a CSV header ({error})"], total=1) from None
    unknown = sorted(set(columns) - set(ITEM_FIELDS))
    if "input" not in columns or unknown:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "no 'input' column"
        raise ImportFailed([f"line 1: {problem}; columns may be: {', '.join(ITEM_FIELDS)}"], total=1)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            collector.bad(start, f"not a valid CSV record ({error})")
            break  # the reader cannot resynchronise after a broken record
        if len(collector.items) + collector.total_errors >= limits.MAX_ITEMS_PER_BATCH:
            collector.bad(start, f"more than {limits.MAX_ITEMS_PER_BATCH:,} records; split the file")
            break
        if None in row:
            collector.bad(start, "more cells than header columns")
        else:
            try:
                collector.add(start, _csv_row(row))
            except ValidationFailed as error:
                collector.bad(start, error.message)
        start = reader.line_num + 1
    return collector.result()
