"""One YAML loader: data with its node tree, and errors as `file:line: message`."""

from __future__ import annotations

import pytest

from core import yamlfile

TEXT = """\
providers:
  - name: acme
    base_url: https://x.example.com/v1
  - name: other
    price:
      is_free: true
"""


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(TEXT)
    return yamlfile.load(path)


def test_load_returns_the_data_and_the_node_tree(document):
    assert document.data == {
        "providers": [
            {"name": "acme", "base_url": "https://x.example.com/v1"},
            {"name": "other", "price": {"is_free": True}},
        ]
    }
    assert yamlfile.line_of(document.root) == 1


def test_find_names_the_line_of_a_value_at_any_depth(document):
    assert yamlfile.line_of(document.find("providers[0].base_url")) == 3
    assert yamlfile.line_of(document.find("providers[1].price.is_free")) == 6
    assert document.find("providers[1].colour") is None
    assert document.find("providers[7]") is None


def test_node_at_falls_back_to_the_deepest_node_that_exists(document):
    assert yamlfile.line_of(document.node_at("providers[1].colour")) == 4
    assert yamlfile.line_of(document.node_at("providers[7].name")) == 2
    assert document.node_at("") is document.root


def test_error_prefixes_file_and_line(document):
    message = document.error(document.find("providers[0].name"), "name is taken.")

    assert message == f"{document.path}:2: name is taken."
    assert document.error(5, "five") == f"{document.path}:5: five"
    assert document.error(None, "none") == f"{document.path}:1: none"


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("providers:\n  - name: a\n  b: [\n")

    with pytest.raises(yamlfile.YamlFileError) as raised:
        yamlfile.load(path)

    assert str(raised.value).startswith(f"{path}:3: invalid YAML: ")
    assert raised.value.line == 3


def test_an_unreadable_file_is_an_error_on_line_1(tmp_path):
    path = tmp_path / "missing.yaml"

    with pytest.raises(yamlfile.YamlFileError, match=r"missing\.yaml:1: cannot read the file"):
        yamlfile.load(path)


def test_only_safe_types_are_built(tmp_path):
    path = tmp_path / "unsafe.yaml"
    path.write_text("x: !!python/object/apply:os.system ['true']\n")

    with pytest.raises(yamlfile.YamlFileError, match=r"unsafe\.yaml:1: invalid YAML"):
        yamlfile.load(path)


def test_an_empty_file_has_no_data_and_no_root(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")

    document = yamlfile.load(path)

    assert (document.data, document.root) == (None, None)
    assert document.node_at("providers") is None
