from __future__ import annotations

import textwrap
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.testing import snapshot
from prompts.models import LabelHistory, Prompt, PromptLabel, PromptVersion

pytestmark = pytest.mark.django_db
TABLES = (Prompt, PromptVersion, PromptLabel, LabelHistory)

SUPPORT_YAML = textwrap.dedent(
    """\
    name: support
    description: Answers customers
    tags: [support]
    messages:
      - role: system
        content: |
          You are a support agent for {{ product }}.
          Be brief.
      - role: user
        content: "{{ question }}"
    params:
      model: gpt-4o-mini
      temperature: 0.2
    """
)


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def test_sync_creates_versions_only_for_changed_content_and_moves_a_label(tmp_path, team_a):
    (tmp_path / "support.yaml").write_text(SUPPORT_YAML)

    first = run("prompts_sync", str(tmp_path), "--team", str(team_a.team.id), "--label", "staging")
    second = run("prompts_sync", str(tmp_path), "--team", "Team A", "--label", "staging")
    (tmp_path / "support.yaml").write_text(SUPPORT_YAML.replace("Be brief.", "Be very brief."))
    third = run("prompts_sync", str(tmp_path), "--team", "Team A", "--label", "staging")

    prompt = Prompt.objects.get(team=team_a.team, name="support")
    assert "support: create prompt" in first
    assert "support: create version 1" in first
    assert "support: move label staging to version 1" in first
    assert "support: unchanged (version 1)" in second
    assert "0 change(s)" in second
    assert "support: create version 2" in third
    assert PromptLabel.objects.get(prompt=prompt, name="staging").version.number == 2
    assert PromptVersion.objects.get(prompt=prompt, number=1).variables == ["product", "question"]
    assert LabelHistory.objects.filter(prompt=prompt).latest("id").actor_label == "prompts_sync"


def test_dry_run_writes_nothing(tmp_path, team_a):
    (tmp_path / "support.yaml").write_text(SUPPORT_YAML)
    before = snapshot(*TABLES)

    output = run("prompts_sync", str(tmp_path), "--dry-run", "--label", "staging")

    assert "support: would create version 1" in output
    assert "dry run" in output
    assert snapshot(*TABLES) == before


def test_invalid_files_report_file_and_line_and_nothing_is_written(tmp_path, team_a):
    (tmp_path / "a_good.yaml").write_text(SUPPORT_YAML.replace("name: support", "name: good"))
    (tmp_path / "bad_role.yaml").write_text(SUPPORT_YAML.replace("role: user", "role: robot"))
    (tmp_path / "bad_template.yaml").write_text(SUPPORT_YAML.replace("Be brief.", "Be {% if x %}brief."))
    (tmp_path / "bad_yaml.yaml").write_text("name: x\nmessages: [\n")
    (tmp_path / "unknown_key.yaml").write_text(SUPPORT_YAML + "colour: red\n")
    before = snapshot(*TABLES)
    err = StringIO()

    with pytest.raises(CommandError, match="4 invalid file"):
        call_command("prompts_sync", str(tmp_path), stdout=StringIO(), stderr=err)

    lines = err.getvalue().splitlines()
    assert any(line.startswith(f"{tmp_path / 'bad_role.yaml'}:9: messages[1].role") for line in lines), lines
    assert any(
        line.startswith(f"{tmp_path / 'bad_template.yaml'}:8: messages[0].content: template syntax error")
        for line in lines
    ), lines
    assert any(line.startswith(f"{tmp_path / 'bad_yaml.yaml'}:3: invalid YAML") for line in lines), lines
    assert any(line.startswith(f"{tmp_path / 'unknown_key.yaml'}:14: unknown key 'colour'") for line in lines), lines
    assert snapshot(*TABLES) == before


def test_export_then_sync_is_a_no_op(tmp_path, team_a, make_prompt):
    make_prompt(team_a.team, name="support", versions=2, description="Multi\nline", tags=["x", "y"])
    make_prompt(team_a.team, name="empty", versions=0)
    (tmp_path / "out").mkdir()
    exported = run("prompts_export", str(tmp_path / "out"), "--team", "Team A")
    before = snapshot(*TABLES)

    synced = run("prompts_sync", str(tmp_path / "out"), "--team", "Team A", "--label", "production")

    assert "support: wrote version 2" in exported
    assert "empty: skipped (no versions)" in exported
    assert "support: unchanged (version 2)" in synced
    # Only the label moves (it did not exist); no prompt or version changes.
    after = snapshot(*TABLES)
    assert after[0] == before[0]
    assert after[1] == before[1]
    assert (
        run("prompts_sync", str(tmp_path / "out"), "--team", "Team A", "--label", "production").count("change(s)") == 1
    )
    assert "0 change(s)" in run("prompts_sync", str(tmp_path / "out"), "--team", "Team A", "--label", "production")


def test_team_is_required_when_several_exist(tmp_path, team_a, team_b):
    (tmp_path / "support.yaml").write_text(SUPPORT_YAML)

    with pytest.raises(CommandError, match="--team"):
        run("prompts_sync", str(tmp_path))
