"""gateway_sync FILE (catalog as code) and seed_catalog."""

from __future__ import annotations

import io
import textwrap
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from core import crypto
from core.testing import snapshot
from costs.models import ModelPrice
from gateway import catalog
from gateway.models import LanguageModel, Provider, RoutingPolicy

pytestmark = pytest.mark.django_db

CATALOG = (Provider, LanguageModel, RoutingPolicy, ModelPrice)
CATALOG_YAML = """\
providers:
  - name: acme
    base_url: https://llm.example.com/v1
    api_key: ${ACME_KEY}
    read_timeout_seconds: 30
models:
  - name: acme-large
    provider: acme
    provider_model: acme-large-2025
    context_window: 32000
    tier: large
    fallbacks: [acme-small]
    price: {input_per_million: 3, output_per_million: 12}
  - name: acme-small
    provider: acme
    provider_model: acme-small-2025
    tier: small
"""


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    catalog._cache.clear()


@pytest.fixture
def acme_key(monkeypatch):
    monkeypatch.setenv("ACME_KEY", "sk-acme-secret-1234567890")
    return "sk-acme-secret-1234567890"


def sync(tmp_path, text: str, *options: str) -> tuple[str, str]:
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(text))
    out, err = io.StringIO(), io.StringIO()
    call_command("gateway_sync", str(path), *options, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_sync_creates_the_shared_catalog_and_a_second_run_changes_nothing(tmp_path, acme_key):
    out, _ = sync(tmp_path, CATALOG_YAML)

    assert out.splitlines() == [
        "provider acme: created",
        "model acme-large: created",
        "model acme-small: created",
        "3 change(s) to the shared catalog.",
    ]
    provider = Provider.objects.get(name="acme")
    assert provider.team_id is None
    assert provider.read_timeout_seconds == 30
    assert crypto.decrypt(provider.api_key_encrypted) == acme_key
    large = LanguageModel.objects.get(name="acme-large")
    assert (large.tier, large.context_window, large.fallbacks) == ("large", 32000, ["acme-small"])
    assert ModelPrice.objects.get(model="acme-large").input_per_million == Decimal(3)

    before = snapshot(*CATALOG)
    again, _ = sync(tmp_path, CATALOG_YAML)

    assert (
        again.splitlines()[-1] == f"Nothing to change: the shared catalog already matches {tmp_path / 'catalog.yaml'}."
    )
    assert snapshot(*CATALOG) == before


def test_sync_reports_what_changed(tmp_path, acme_key, monkeypatch):
    sync(tmp_path, CATALOG_YAML)
    monkeypatch.setenv("ACME_KEY", "sk-acme-rotated-0987654321")

    out, _ = sync(tmp_path, CATALOG_YAML.replace("tier: small", "tier: medium"))

    assert out.splitlines() == [
        "provider acme: updated (api_key)",
        "model acme-large: unchanged",
        "model acme-small: updated (tier)",
        "2 change(s) to the shared catalog.",
    ]


def test_dry_run_writes_nothing(tmp_path, acme_key):
    before = snapshot(*CATALOG)

    out, _ = sync(tmp_path, CATALOG_YAML, "--dry-run")

    assert out.splitlines()[-1] == "3 change(s) to the shared catalog (dry run: nothing written)."
    assert snapshot(*CATALOG) == before


def test_team_entries_and_routing(tmp_path, team_a, acme_key):
    text = CATALOG_YAML.replace("    price: {input_per_million: 3, output_per_million: 12}\n", "") + textwrap.dedent(
        f"""\
        routing:
          - application: {team_a.application.name}
            model: acme-large
            fallbacks: [acme-small]
        """
    )

    out, _ = sync(tmp_path, text, "--team", "Team A")

    assert out.splitlines()[-1] == "4 change(s) to team Team A."
    assert set(Provider.objects.values_list("team_id", flat=True)) == {team_a.team.id}
    routing = RoutingPolicy.objects.get(application=team_a.application)
    assert (routing.model, routing.fallbacks) == ("acme-large", ["acme-small"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers:\n  - name: acme\n    base_url: nope\n", "yaml:3: base_url 'nope' is not an http(s) URL"),
        (
            "providers:\n  - name: acme\n    base_url: https://x.example.com/v1\n    read_timeout_seconds: 9999\n",
            "4: read_timeout_seconds must be from 0.1 to 600",
        ),
        (
            "providers:\n  - name: acme\n    base_url: https://x.example.com/v1\n    api_key: sk-literal\n",
            "4: api_key must be an environment variable reference",
        ),
        (
            "providers:\n  - name: acme\n    base_url: https://x.example.com/v1\n    api_key: ${MISSING_VAR}\n",
            "4: api_key: the environment variable MISSING_VAR is not set.",
        ),
        ("models:\n  - name: m\n    provider: ghost\n    provider_model: x\n", "3: No provider 'ghost'"),
        ("models:\n  - name: m\n    provider_model: x\n", "yaml:2: provider is required for every model."),
        ("models:\n  - name: m\n    colour: blue\n", "3: unknown key 'colour' in models"),
        ("prompts: []\n", "1: unknown section 'prompts'"),
        ("providers: [\n", "invalid YAML"),
        (
            "providers:\n  - name: acme\n    base_url: https://x.example.com/v1\n    max_retries: 2.5\n",
            "4: max_retries must be a whole number from 0 to 10.",
        ),
        (
            "providers:\n  - name: acme\n    base_url: https://x.example.com/v1\n    is_enabled: maybe\n",
            "4: is_enabled must be true or false.",
        ),
        (
            "models:\n  - name: m\n    provider: p\n    provider_model: x\n    context_window: big\n",
            "5: context_window must be a whole number of tokens from 1 to 10000000.",
        ),
    ],
)
def test_an_invalid_file_names_file_and_line_and_writes_nothing(tmp_path, text, message):
    before = snapshot(*CATALOG)

    with pytest.raises(CommandError, match="nothing was written"):
        sync(tmp_path, text)

    assert snapshot(*CATALOG) == before
    path = tmp_path / "catalog.yaml"
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("gateway_sync", str(path), stderr=err)
    assert f"{path}:" in err.getvalue()
    assert message in err.getvalue()


def test_a_later_entry_failing_rolls_back_the_earlier_ones(tmp_path, acme_key):
    text = CATALOG_YAML + "  - name: broken\n    provider: acme\n    provider_model: x\n    fallbacks: [ghost]\n"
    before = snapshot(*CATALOG)
    err = io.StringIO()
    (tmp_path / "catalog.yaml").write_text(text)

    with pytest.raises(CommandError):
        call_command("gateway_sync", str(tmp_path / "catalog.yaml"), stderr=err)

    assert snapshot(*CATALOG) == before
    assert err.getvalue().strip() == (
        f"{tmp_path / 'catalog.yaml'}:21: fallbacks: no model named 'ghost' in the shared catalog; "
        "add the model first or fix the name."
    )


def test_seed_catalog_is_idempotent_and_adds_openai_with_a_key(monkeypatch, team_a):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = io.StringIO()
    call_command("seed_catalog", "--local-url", "http://127.0.0.1:9999/v1", stdout=out)

    assert LanguageModel.objects.get(name="smollm2-135m").provider.base_url == "http://127.0.0.1:9999/v1"
    assert not Provider.objects.filter(name="openai").exists()

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-1234567890")
    call_command("seed_catalog", "--local-url", "http://127.0.0.1:9999/v1", stdout=io.StringIO())
    before = snapshot(*CATALOG)
    second = io.StringIO()
    call_command("seed_catalog", "--local-url", "http://127.0.0.1:9999/v1", stdout=second)

    assert snapshot(*CATALOG) == before
    assert second.getvalue().splitlines()[-1] == "Catalog seeded: 0 change(s)."
    openai = Provider.objects.get(name="openai", team__isnull=True)
    assert crypto.decrypt(openai.api_key_encrypted) == "sk-openai-test-1234567890"
    assert LanguageModel.objects.get(name="gpt-4o").fallbacks == ["gpt-4o-mini", "smollm2-135m"]
    served = catalog.model_for(team_id=team_a.team.id, name="gpt-4o-mini")
    assert served is not None
    assert served.provider.api_key == "sk-openai-test-1234567890"


def test_seed_catalog_routes_the_demo_application_once(team_a):
    call_command(
        "seed_catalog", "--demo-team", "Team A", "--demo-application", team_a.application.name, stdout=io.StringIO()
    )

    assert RoutingPolicy.objects.get(application=team_a.application).model == "smollm2-135m"
