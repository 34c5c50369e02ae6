"""Prompts as code: read and write one YAML file per prompt.

Reading goes through core.yamlfile, so that every error names `file:line`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core import yamlfile
from core.errors import ValidationFailed
from prompts import content
from prompts.models import DEFAULT_PROTECTED_LABELS, Prompt, PromptVersion

ALLOWED_KEYS = (
    "name",
    "description",
    "tags",
    "classification",
    "messages",
    "params",
    "variables",
    "context_budget",
    "commit_message",
)


@dataclass
class PromptFile:
    path: Path
    name: str
    description: str
    tags: list[str]
    version: content.VersionContent
    commit_message: str


@dataclass
class ReadResult:
    files: list[PromptFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _line_of_error(document: yamlfile.YamlDocument, error: ValidationFailed) -> int:
    node = document.node_at(error.param or "")
    line = yamlfile.line_of(node)
    template = re.search(r"at line (\d+), column \d+", error.message)
    if template and isinstance(node, yaml.ScalarNode):
        # A block scalar (| or >) starts on the line after its indicator.
        offset = 1 if node.style in ("|", ">") else 0
        line += offset + int(template.group(1)) - 1
    return line


def read_file(path: Path) -> tuple[PromptFile | None, list[str]]:
    try:
        document = yamlfile.load(path)
    except yamlfile.YamlFileError as error:
        return None, [str(error)]
    data, root = document.data, document.root
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        return None, [document.error(1, "a prompt file must be a mapping with name, messages, ...")]
    errors = []
    for key_node, _ in root.value:
        if key_node.value not in ALLOWED_KEYS:
            errors.append(
                document.error(key_node, f"unknown key '{key_node.value}'; allowed: {', '.join(ALLOWED_KEYS)}")
            )
    name = data.get("name", path.stem)
    try:
        content.validate_prompt_name(name)
        if not isinstance(data.get("description", ""), str):
            raise ValidationFailed("description must be a string.", param="description")
        tags = content.validate_tags(data.get("tags", []))
        if not isinstance(data.get("commit_message", ""), str):
            raise ValidationFailed("commit_message must be a string.", param="commit_message")
        if "messages" not in data:
            raise ValidationFailed("messages is required: a list of {role, content}.", param="messages")
        version = content.validate_content(
            messages=data.get("messages"),
            params=data.get("params"),
            variables=data.get("variables"),
            context_budget=data.get("context_budget"),
            classification=data.get("classification"),
        )
    except ValidationFailed as error:
        errors.append(document.error(_line_of_error(document, error), error.message))
        return None, errors
    if errors:
        return None, errors
    prompt_file = PromptFile(
        path=path,
        name=name,
        description=data.get("description", ""),
        tags=tags,
        version=version,
        commit_message=data.get("commit_message", ""),
    )
    return prompt_file, []


def read_directory(directory: Path) -> ReadResult:
    result = ReadResult()
    paths = sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")])
    seen: dict[str, Path] = {}
    for path in paths:
        prompt_file, errors = read_file(path)
        result.errors.extend(errors)
        if prompt_file is None:
            continue
        if prompt_file.name in seen:
            result.errors.append(
                f"{path}:1: the prompt '{prompt_file.name}' is also defined in {seen[prompt_file.name]}"
            )
            continue
        seen[prompt_file.name] = path
        result.files.append(prompt_file)
    return result


class _Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_text)


def dump_prompt(prompt: Prompt, version: PromptVersion) -> str:
    data: dict[str, Any] = {"name": prompt.name}
    if prompt.description:
        data["description"] = prompt.description
    if prompt.tags:
        data["tags"] = list(prompt.tags)
    # Always written, even the default: the level of what the file holds must be visible in review.
    data["classification"] = version.classification_name
    data["messages"] = [dict(message) for message in version.messages]
    if version.params:
        data["params"] = dict(version.params)
    data["variables"] = list(version.variables)
    if version.context_budget:
        data["context_budget"] = dict(version.context_budget)
    if version.commit_message:
        data["commit_message"] = version.commit_message
    header = f"# Exported from the prompt registry: {prompt.name} version {version.number}.\n"
    if prompt.protected_labels != DEFAULT_PROTECTED_LABELS:
        header += f"# Protected labels (not synced): {', '.join(prompt.protected_labels)}\n"
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
