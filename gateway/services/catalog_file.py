"""The catalog file (gateway_sync): a YAML file of providers, models and routing, read into
specs. This is the file's entry point: every value is type-checked here, once, with a message
naming the field and its `file:line`; the services then check ranges, names and references.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from core import yamlfile
from core.errors import ValidationFailed
from gateway.services.models import MAX_CONTEXT_WINDOW
from gateway.services.prices import price_from
from gateway.services.providers import PROVIDER_LIMITS
from gateway.services.specs import ModelSpec, ProviderSpec, RoutingSpec

SECTIONS = ("providers", "models", "routing")
PROVIDER_KEYS = (
    "name",
    "base_url",
    "api_key",
    "connect_timeout_seconds",
    "read_timeout_seconds",
    "max_retries",
    "retry_budget_seconds",
    "is_enabled",
)
MODEL_KEYS = ("name", "provider", "provider_model", "context_window", "tier", "fallbacks", "is_enabled", "price")
AMOUNT_KEYS = ("input_per_million", "output_per_million", "cached_input_per_million")
PRICE_KEYS = (*AMOUNT_KEYS, "is_free")
ROUTING_KEYS = ("application", "team", "policy", "model", "fallbacks")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class CatalogFile:
    providers: list[ProviderSpec] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    routing: list[RoutingSpec] = field(default_factory=list)


@dataclass
class ReadResult:
    catalog: CatalogFile | None
    errors: list[str]
    document: yamlfile.YamlDocument | None = None

    def error(self, section: str, index: int, param: str | None, message: str) -> str:
        """`file:line: message` for a field of an entry (an error found when applying it)."""
        assert self.document is not None  # only a file that was read has entries
        return self.document.error(entry_node(self.document, section, index, param), message)


def entry_node(document: yamlfile.YamlDocument, section: str, index: int, param: str | None) -> yaml.Node | None:
    """The node of `section[index].param` (or of its price's param, or of the entry, or of the
    section) for error lines."""
    entry = f"{section}[{index}]"
    if param:
        for path in (f"{entry}.{param}", f"{entry}.price.{param}"):
            node = document.find(path)
            if node is not None:
                return node
    return document.node_at(entry)


def _expand(value: Any, *, param: str, environ: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValidationFailed(f"{param}: the environment variable {name} is not set.", param=param)
        return environ[name]

    return _REFERENCE.sub(substitute, value)


def _decimal(value: Any, *, param: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationFailed(f"{param} must be a number (USD per million tokens).", param=param)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(f"{param} must be a number (USD per million tokens).", param=param) from None


def _names(value: Any, *, param: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationFailed(f"{param} must be a list of model names.", param=param)
    return tuple(value)


def _boolean(value: Any, *, param: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(f"{param} must be true or false.", param=param)
    return value


def _provider_number(value: Any, *, param: str) -> float:
    low, high = PROVIDER_LIMITS[param]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed(f"{param} must be a number from {low:g} to {high:g}.", param=param)
    return float(value)


def _provider_whole_number(value: Any, *, param: str) -> int:
    number = _provider_number(value, param=param)
    if number.is_integer():
        return int(number)
    low, high = PROVIDER_LIMITS[param]
    raise ValidationFailed(f"{param} must be a whole number from {low:g} to {high:g}.", param=param)


def _required(entry: dict[str, Any], key: str, what: str) -> Any:
    if entry.get(key) in (None, ""):
        raise ValidationFailed(f"{key} is required for every {what}.", param=key)
    return entry[key]


def _given(entry: dict[str, Any], key: str) -> bool:
    """A key set to null counts as not given (the default applies)."""
    return entry.get(key) is not None


def _provider(entry: dict[str, Any], environ: dict[str, str]) -> ProviderSpec:
    api_key = entry.get("api_key")
    if api_key is not None:
        if not isinstance(api_key, str) or not _REFERENCE.fullmatch(api_key.strip()):
            raise ValidationFailed(
                "api_key must be an environment variable reference such as ${OPENAI_API_KEY}, "
                "so that the secret stays out of the file.",
                param="api_key",
            )
        api_key = _expand(api_key.strip(), param="api_key", environ=environ)
    values = {
        key: _expand(entry[key], param=key, environ=environ)
        for key in PROVIDER_KEYS
        if key not in ("name", "api_key") and _given(entry, key)
    }
    _required(entry, "base_url", "provider")
    name = str(_required(entry, "name", "provider"))
    if not isinstance(values["base_url"], str):
        raise ValidationFailed("base_url is required, e.g. https://api.openai.com/v1.", param="base_url")
    settings: dict[str, Any] = {}
    for key in ("connect_timeout_seconds", "read_timeout_seconds", "retry_budget_seconds"):
        if key in values:
            settings[key] = _provider_number(values[key], param=key)
    if "max_retries" in values:
        settings["max_retries"] = _provider_whole_number(values["max_retries"], param="max_retries")
    if "is_enabled" in values:
        settings["is_enabled"] = _boolean(values["is_enabled"], param="is_enabled")
    return ProviderSpec(name=name, base_url=values["base_url"], api_key=api_key, **settings)


def _model(entry: dict[str, Any]) -> ModelSpec:
    price_entry = entry.get("price")
    price = None
    if price_entry is not None:
        if not isinstance(price_entry, dict):
            raise ValidationFailed(f"price must be a mapping with {', '.join(PRICE_KEYS)}.", param="price")
        unknown = sorted(set(price_entry) - set(PRICE_KEYS))
        if unknown:
            raise ValidationFailed(
                f"price: unknown key '{unknown[0]}'; allowed: {', '.join(PRICE_KEYS)}.", param=str(unknown[0])
            )
        is_free = price_entry.get("is_free")
        price = price_from(
            **{key: _decimal(price_entry.get(key), param=key) for key in AMOUNT_KEYS},
            is_free=_boolean(is_free, param="is_free") if is_free is not None else None,
        )
    name = str(_required(entry, "name", "model"))
    provider = str(_required(entry, "provider", "model"))
    provider_model = str(_required(entry, "provider_model", "model"))
    fallbacks = _names(entry.get("fallbacks"), param="fallbacks")
    settings: dict[str, Any] = {}
    if _given(entry, "context_window"):
        context_window = entry["context_window"]
        if isinstance(context_window, bool) or not isinstance(context_window, int):
            raise ValidationFailed(
                f"context_window must be a whole number of tokens from 1 to {MAX_CONTEXT_WINDOW}.",
                param="context_window",
            )
        settings["context_window"] = context_window
    if _given(entry, "tier"):
        settings["tier"] = str(entry["tier"])
    if _given(entry, "is_enabled"):
        settings["is_enabled"] = _boolean(entry["is_enabled"], param="is_enabled")
    return ModelSpec(
        name=name, provider=provider, provider_model=provider_model, fallbacks=fallbacks, price=price, **settings
    )


def _routing(entry: dict[str, Any]) -> RoutingSpec:
    team = entry.get("team")
    return RoutingSpec(
        application=str(_required(entry, "application", "routing entry")),
        team=str(team) if team is not None else None,
        policy=str(entry.get("policy", "fixed")),
        model=str(entry.get("model") or ""),
        fallbacks=_names(entry.get("fallbacks"), param="fallbacks"),
    )


def read_catalog_file(path: Path, *, environ: dict[str, str] | None = None) -> ReadResult:
    """The file's entries as specs, or every error found, each as `file:line: message`."""
    environ = dict(os.environ) if environ is None else environ
    try:
        document = yamlfile.load(path)
    except yamlfile.YamlFileError as error:
        return ReadResult(None, [str(error)])
    data, root = document.data, document.root
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        return ReadResult(None, [document.error(1, f"a catalog file is a mapping with {', '.join(SECTIONS)}.")])
    errors: list[str] = []
    for key_node, _ in root.value:
        if key_node.value not in SECTIONS:
            errors.append(
                document.error(key_node, f"unknown section '{key_node.value}'; allowed: {', '.join(SECTIONS)}.")
            )
    catalog = CatalogFile()
    readers: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], Any], list[Any]]] = {
        "providers": (PROVIDER_KEYS, lambda entry: _provider(entry, environ), catalog.providers),
        "models": (MODEL_KEYS, _model, catalog.models),
        "routing": (ROUTING_KEYS, _routing, catalog.routing),
    }
    for section, (allowed, build, target) in readers.items():
        entries = data.get(section) or []
        if not isinstance(entries, list):
            errors.append(document.error(document.find(section), f"{section} must be a list of entries."))
            continue
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            entry_at = entry_node(document, section, index, None)
            if not isinstance(entry, dict):
                errors.append(document.error(entry_at, f"each entry of {section} must be a mapping."))
                continue
            unknown = [key for key in entry if key not in allowed]
            for key in unknown:
                errors.append(
                    document.error(
                        entry_node(document, section, index, str(key)),
                        f"unknown key '{key}' in {section}; allowed: {', '.join(allowed)}.",
                    )
                )
            if unknown:
                continue
            try:
                spec = build(entry)
            except ValidationFailed as error:
                errors.append(document.error(entry_node(document, section, index, error.param), error.message))
                continue
            identity = getattr(spec, "name", None) or f"{getattr(spec, 'team', '')}/{getattr(spec, 'application', '')}"
            if identity in seen:
                errors.append(
                    document.error(entry_at, f"{section} lists '{identity}' twice (first at line {seen[identity]}).")
                )
                continue
            seen[identity] = yamlfile.line_of(entry_at)
            target.append(spec)
    if errors:
        return ReadResult(None, errors, document)
    return ReadResult(catalog, [], document)
