"""gateway_sync FILE: load providers, models and routing from a YAML file (catalog as code).

Each model's price belongs to that model of the catalog (`--team`: the team's model, whatever
its name); a changed price applies from now on and is audited. Idempotent (a second run
changes nothing and says so); all or nothing; `--dry-run` writes
nothing; `--team T` for a team's entries (default: the shared catalog).

    providers:
      - name: openai
        base_url: https://api.openai.com/v1
        api_key: ${OPENAI_API_KEY}        # an environment variable: secrets stay out of the file
        read_timeout_seconds: 60
    models:
      - name: gpt-4o
        provider: openai
        provider_model: gpt-4o
        context_window: 128000
        tier: large
        fallbacks: [gpt-4o-mini]
        price: {input_per_million: 2.5, output_per_million: 10, cached_input_per_million: 1.25}
      - name: team-llama
        provider: openai
        provider_model: llama-3.1-8b
        price: {is_free: true}              # says it costs nothing; a model with no price at all
                                            # is refused while a budget applies to its calls
    routing:
      - application: demo-app
        team: Demo                          # optional with --team
        model: gpt-4o
        fallbacks: [smollm2-135m]

Reading keeps the YAML node tree so that every error names `file:line`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Team
from core.errors import ValidationFailed
from core.ids import parse_whole_number
from gateway import services
from gateway.services import ModelSpec, ProviderSpec, RoutingSpec, price_from

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
    root: yaml.Node | None = None


def entry_node(root: yaml.Node | None, section: str, index: int, param: str | None) -> yaml.Node | None:
    """The node of `section[index].param` (or of the entry, or the section) for error lines."""
    section_node = _value_of(root, section)
    if not isinstance(section_node, yaml.SequenceNode) or index >= len(section_node.value):
        return section_node or root
    entry = section_node.value[index]
    if not param:
        return entry
    return _value_of(entry, param) or _value_of(_value_of(entry, "price"), param) or entry


def _value_of(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((value for name, value in node.value if getattr(name, "value", None) == key), None)


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


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


def _required(entry: dict[str, Any], key: str, what: str) -> Any:
    if entry.get(key) in (None, ""):
        raise ValidationFailed(f"{key} is required for every {what}.", param=key)
    return entry[key]


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
    defaults = ProviderSpec(name="", base_url="")
    values = {
        key: _expand(entry[key], param=key, environ=environ) if key in entry else getattr(defaults, key)
        for key in (
            "base_url",
            "connect_timeout_seconds",
            "read_timeout_seconds",
            "max_retries",
            "retry_budget_seconds",
            "is_enabled",
        )
    }
    _required(entry, "base_url", "provider")
    return ProviderSpec(name=str(_required(entry, "name", "provider")), api_key=api_key, **values)


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
        if is_free is not None and not isinstance(is_free, bool):
            raise ValidationFailed("is_free must be true or false.", param="is_free")
        price = price_from(
            **{key: _decimal(price_entry.get(key), param=key) for key in AMOUNT_KEYS},
            is_free=is_free,
        )
    defaults = ModelSpec(name="", provider="", provider_model="")
    return ModelSpec(
        name=str(_required(entry, "name", "model")),
        provider=str(_required(entry, "provider", "model")),
        provider_model=str(_required(entry, "provider_model", "model")),
        context_window=entry.get("context_window", defaults.context_window),
        tier=entry.get("tier", defaults.tier),
        fallbacks=_names(entry.get("fallbacks"), param="fallbacks"),
        is_enabled=entry.get("is_enabled", defaults.is_enabled),
        price=price,
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
    environ = dict(os.environ) if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return ReadResult(None, [f"{path}:1: cannot read the file ({error.strerror})."])
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        return ReadResult(None, [f"{path}:{mark.line + 1 if mark else 1}: invalid YAML: {error.problem or error}"])
    if not isinstance(data, dict) or root is None:
        return ReadResult(None, [f"{path}:1: a catalog file is a mapping with {', '.join(SECTIONS)}."])
    errors: list[str] = []
    for key_node, _ in root.value:
        if key_node.value not in SECTIONS:
            errors.append(
                f"{path}:{_line(key_node)}: unknown section '{key_node.value}'; allowed: {', '.join(SECTIONS)}."
            )
    catalog = CatalogFile()
    readers: dict[str, tuple[tuple[str, ...], Any, list[Any]]] = {
        "providers": (PROVIDER_KEYS, lambda entry: _provider(entry, environ), catalog.providers),
        "models": (MODEL_KEYS, _model, catalog.models),
        "routing": (ROUTING_KEYS, _routing, catalog.routing),
    }
    for section, (allowed, build, target) in readers.items():
        entries = data.get(section) or []
        if not isinstance(entries, list):
            errors.append(f"{path}:{_line(_value_of(root, section))}: {section} must be a list of entries.")
            continue
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            entry_at = entry_node(root, section, index, None)
            if not isinstance(entry, dict):
                errors.append(f"{path}:{_line(entry_at)}: each entry of {section} must be a mapping.")
                continue
            unknown = [key for key in entry if key not in allowed]
            for key in unknown:
                errors.append(
                    f"{path}:{_line(entry_node(root, section, index, str(key)))}: unknown key '{key}' in {section}; "
                    f"allowed: {', '.join(allowed)}."
                )
            if unknown:
                continue
            try:
                spec = build(entry)
            except ValidationFailed as error:
                errors.append(f"{path}:{_line(entry_node(root, section, index, error.param))}: {error.message}")
                continue
            identity = getattr(spec, "name", None) or f"{getattr(spec, 'team', '')}/{getattr(spec, 'application', '')}"
            if identity in seen:
                errors.append(
                    f"{path}:{_line(entry_at)}: {section} lists '{identity}' twice (first at line {seen[identity]})."
                )
                continue
            seen[identity] = _line(entry_at)
            target.append(spec)
    if errors:
        return ReadResult(None, errors, root)
    return ReadResult(catalog, [], root)


class Command(BaseCommand):
    help = "Load providers, models and routing from a YAML file into the catalog (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--team", help="Team id or name for team entries (default: the shared catalog).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        team = _team(options["team"])
        result = read_catalog_file(path)
        if result.errors or result.catalog is None:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"{len(result.errors)} error(s) in {path}; nothing was written.")
        catalog = result.catalog
        try:
            lines, changes = services.catalog_apply(
                team=team,
                providers=catalog.providers,
                models=catalog.models,
                routing=catalog.routing,
                is_dry_run=options["dry_run"],
            )
        except services.CatalogEntryError as error:
            node = entry_node(result.root, error.section, error.index, error.error.param)
            self.stderr.write(f"{path}:{_line(node)}: {error.error.message}")
            raise CommandError(f"1 error in {path}; nothing was written.") from None
        for line in lines:
            self.stdout.write(line)
        where = f"team {team.name}" if team is not None else "the shared catalog"
        if changes == 0:
            self.stdout.write(f"Nothing to change: {where} already matches {path}.")
        elif options["dry_run"]:
            self.stdout.write(f"{changes} change(s) to {where} (dry run: nothing written).")
        else:
            self.stdout.write(f"{changes} change(s) to {where}.")


def _team(value: str | None) -> Team | None:
    if not value:
        return None
    team_id = parse_whole_number(value)
    team = Team.objects.filter(pk=team_id).first() if team_id is not None else None
    team = team or Team.objects.filter(name=value).first()
    if team is None:
        raise CommandError(f"No team with id or name '{value}'.")
    return team
