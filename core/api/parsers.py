"""The REST API's JSON parser: a body nested too deeply is a 400, never a RecursionError (500)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.limits import MAX_NESTING_DEPTH, check_nesting


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # The decoder's own stack gives out near 1,000 levels, long before any real body.
            raise ParseError(
                f"JSON parse error - the body nests arrays and objects too deeply; it may nest at most "
                f"{MAX_NESTING_DEPTH} levels."
            ) from None
        check_nesting(data)
        return data
