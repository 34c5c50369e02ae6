"""Datasets: reproducible versions, all-or-nothing imports with line numbers, bounds, calls, clearance."""

from __future__ import annotations

import json

import pytest

from accounts.caller import caller_for_user
from compliance.models import AuditEvent
from core.classification import Clearance
from core.errors import ApplicationError, PermissionDenied, ValidationFailed
from core.testing import snapshot
from evaluations import selectors, services
from evaluations.api import ItemInput
from evaluations.importing import ImportFailed
from evaluations.items import ITEM_FIELDS
from evaluations.models import DatasetItem, DatasetVersion
from evaluations.tests.conftest import new_items


def _inputs(dataset, version):
    return [item.input["messages"][0]["content"] for item in selectors.items_at(dataset=dataset, version=version)]


def _q(text):
    return {"input": text, "expected_output": f"answer to {text}"}


def test_every_change_makes_a_version_and_past_versions_stay_exact(engineer, dataset):
    v2 = services.dataset_items_change(caller=engineer, dataset=dataset, add=new_items(_q("a"), _q("b"), _q("c")))
    keys = {item.input["messages"][0]["content"]: item.key for item in selectors.items_at(dataset=dataset, version=2)}
    v3 = services.dataset_items_change(
        caller=engineer, dataset=dataset, update={keys["b"]: new_items(_q("b2"))[0]}, remove=[keys["c"]]
    )
    v4 = services.dataset_items_change(caller=engineer, dataset=dataset, add=new_items(_q("d")))
    assert (v2.number, v3.number, v4.number) == (2, 3, 4)
    assert _inputs(dataset, 1) == []
    assert _inputs(dataset, 2) == ["a", "b", "c"]
    assert _inputs(dataset, 3) == ["a", "b2"]
    assert _inputs(dataset, 4) == ["a", "b2", "d"]
    assert selectors.item_get(dataset=dataset, key=keys["b"], version=2).input["messages"][0]["content"] == "b"
    assert selectors.item_get(dataset=dataset, key=keys["b"]).input["messages"][0]["content"] == "b2"
    dataset.refresh_from_db()
    assert (dataset.current_version, dataset.item_count) == (4, 3)
    assert (v3.changed_count, v3.removed_count, v3.item_count) == (1, 1, 2)
    assert AuditEvent.objects.filter(action="dataset.items_change", target_id=str(dataset.pk)).count() == 3


def test_a_refused_change_changes_nothing(engineer, dataset):
    services.dataset_items_change(caller=engineer, dataset=dataset, add=new_items(_q("a")))
    before = snapshot(DatasetItem, DatasetVersion)
    import uuid

    with pytest.raises(ValidationFailed, match="has no item"):
        services.dataset_items_change(caller=engineer, dataset=dataset, add=new_items(_q("x")), remove=[uuid.uuid4()])
    assert snapshot(DatasetItem, DatasetVersion) == before


def test_jsonl_import_reports_every_bad_line_and_stores_nothing(engineer, dataset):
    lines = [
        json.dumps(_q("fine")),
        "{not json",
        json.dumps({"input": "x", "colour": "red"}),
        "",
        json.dumps({"input": "x", "metadata": {"n": 2**63}}),
        json.dumps({"input": "nul \u0000 here"}),
        json.dumps({"input": {"messages": [{"role": "wizard", "content": "hi"}]}}),
        '{"input": "x", "metadata": {"v": NaN}}',
        json.dumps({"input": "x", "metadata": {"a": json.loads("[" * 20 + "1" + "]" * 20)}}),
    ]
    before = snapshot(DatasetItem, DatasetVersion)
    with pytest.raises(ImportFailed) as refused:
        services.dataset_import(caller=engineer, dataset=dataset, file_name="set.jsonl", data="\n".join(lines).encode())
    assert snapshot(DatasetItem, DatasetVersion) == before
    errors = refused.value.errors
    assert [error.split(":")[0] for error in errors] == [
        "line 2",
        "line 3",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 9",
    ]
    assert "colour" in errors[1]
    assert "64 bits" in errors[2]
    assert "NUL" in errors[3]
    assert "role must be one of" in errors[4]
    assert "NaN" in errors[5]
    assert "levels deep" in errors[6]


def test_import_jsonl_and_csv_keep_provenance(engineer, dataset):
    services.dataset_import(
        caller=engineer,
        dataset=dataset,
        file_name="a.jsonl",
        data=(json.dumps(_q("one")) + "\n\n" + json.dumps(_q("two"))).encode(),
    )
    csv_text = 'input,expected_output,expected_facts,tags\n"What, exactly?",Yes,"fact one\nfact two","a,b"\nplain,,,\n'
    version = services.dataset_import(caller=engineer, dataset=dataset, file_name="b.csv", data=csv_text.encode())
    items = list(selectors.items_at(dataset=dataset, version=version.number))
    assert [(item.source_file, item.source_line) for item in items] == [
        ("a.jsonl", 1),
        ("a.jsonl", 3),
        ("b.csv", 2),
        ("b.csv", 4),
    ]
    assert items[2].expected_facts == ["fact one", "fact two"]
    assert items[2].tags == ["a", "b"]
    assert items[3].expected_output is None


def test_csv_errors_name_the_record_line(engineer, dataset):
    csv_text = 'input,metadata\nok,\nbad,{nope\n"multi\nline",\n,{"a": 1}\n'
    with pytest.raises(ImportFailed) as refused:
        services.dataset_import(caller=engineer, dataset=dataset, file_name="b.csv", data=csv_text.encode())
    assert refused.value.errors == [
        "line 3: metadata: not valid JSON",
        "line 6: input: required (the messages or variables the target receives).",
    ]


def test_huge_line_and_item_bounds(engineer, dataset):
    with pytest.raises(ImportFailed, match=r"line 1: .*characters"):
        services.dataset_import(
            caller=engineer, dataset=dataset, file_name="a.jsonl", data=json.dumps({"input": "x" * 1_100_000}).encode()
        )
    with pytest.raises(ImportFailed, match="at most 100,000"):
        services.dataset_import(
            caller=engineer, dataset=dataset, file_name="a.jsonl", data=json.dumps({"input": "x" * 100_001}).encode()
        )
    with pytest.raises(ImportFailed, match="at most 50"):
        services.dataset_import(
            caller=engineer,
            dataset=dataset,
            file_name="a.jsonl",
            data=json.dumps({"input": "x", "expected_facts": ["f"] * 51}).encode(),
        )


def test_item_schema_is_checked_and_enforced(engineer, team_a):
    with pytest.raises(ValidationFailed, match="item_schema: invalid JSON Schema"):
        services.dataset_create(caller=engineer, team_id=team_a.team.id, name="s", item_schema={"type": 5})
    schema = {"type": "object", "required": ["expected_output"]}
    dataset = services.dataset_create(caller=engineer, team_id=team_a.team.id, name="s", item_schema=schema)
    with pytest.raises(ValidationFailed, match="line 2: does not match the dataset's item schema"):
        services.dataset_import(
            caller=engineer,
            dataset=dataset,
            file_name="a.jsonl",
            data=(json.dumps(_q("a")) + "\n" + json.dumps({"input": "b"})).encode(),
        )
    assert not DatasetItem.objects.filter(dataset=dataset).exists()


def test_clearance_masks_items_and_refuses_writes_above_it(team_a, engineer, dataset):
    services.dataset_items_change(
        caller=engineer, dataset=dataset, add=new_items(_q("open"), {**_q("secret"), "classification": "confidential"})
    )
    viewer = caller_for_user(team_a.members["viewer"])
    from accounts.models import Membership

    Membership.objects.filter(user=team_a.members["viewer"]).update(clearance=Clearance.INTERNAL)
    viewer = caller_for_user(team_a.members["viewer"])
    items = selectors.items_masked_for(
        caller=viewer, dataset=dataset, items=selectors.items_at(dataset=dataset, version=2)
    )
    assert [getattr(item, "is_masked", None) for item in items] == [False, True]
    assert items[1].input is None
    assert items[1].expected_output is None
    lines = b"".join(selectors.dataset_export_lines(caller=viewer, dataset=dataset, version=2)).decode()
    assert "secret" not in lines
    assert lines.count("\n") == 2
    with pytest.raises(PermissionDenied):
        services.dataset_items_change(caller=viewer, dataset=dataset, add=new_items(_q("x")))


def test_from_calls_copies_what_the_caller_sees_and_refuses_above_clearance(
    team_a, team_b, engineer, dataset, make_call
):
    visible = make_call(team_a)
    secret = make_call(team_a, classification=Clearance.RESTRICTED)
    other_team = make_call(team_b)
    with pytest.raises(PermissionDenied, match="above your clearance"):
        services.dataset_add_from_calls(caller=engineer, dataset=dataset, call_ids=[visible.id, secret.id])
    assert not DatasetItem.objects.exists()
    with pytest.raises(ApplicationError) as hidden:
        services.dataset_add_from_calls(caller=engineer, dataset=dataset, call_ids=[other_team.id])
    assert hidden.value.status_code == 404
    result = services.dataset_add_from_calls(caller=engineer, dataset=dataset, call_ids=[visible.id])
    assert result.version is not None
    (item,) = selectors.items_at(dataset=dataset, version=result.version.number)
    assert item.input == {"messages": [{"role": "user", "content": "Where is my order?"}]}
    assert item.expected_output == "It ships tomorrow."
    assert item.source_call_id == visible.id
    from observability.selectors import CallFilters

    again = services.dataset_add_from_calls(caller=engineer, dataset=dataset, filters=CallFilters(), limit=10)
    assert (again.added, again.skipped_above_clearance, again.skipped_already_present) == (0, 1, 1)


def test_the_documented_item_body_names_the_fields_the_parser_takes():
    assert tuple(ItemInput().fields) == ITEM_FIELDS
