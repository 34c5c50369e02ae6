"""Guardrails benchmark: injection recall / false-positive rate, PII precision / recall per entity,
and the latency check_input and check_output add per call.

    .venv/bin/python bench/guardrails_bench.py

Evaluation data (bench/data/injection_eval.jsonl, bench/data/pii_eval.jsonl) is not used for training.
Runs against an in-memory SQLite database; no server is needed.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._measure import percentile  # noqa: E402 - needs ROOT on sys.path
from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings_test")
os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

DATA = ROOT / "bench" / "data"
ENTITIES = ["CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "PERSON", "PHONE_NUMBER", "US_SSN"]


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def injection_figures() -> None:
    from compliance.guardrails import injection
    from compliance.guardrails.models import DEFAULT_INJECTION_THRESHOLD

    rows = load("injection_eval.jsonl")
    findings = injection.score_texts([row["text"] for row in rows])
    malicious = [finding for row, finding in zip(rows, findings, strict=True) if row["label"] == "malicious"]
    benign = [finding for row, finding in zip(rows, findings, strict=True) if row["label"] == "benign"]
    print(
        f"Injection ({len(malicious)} injections, {len(benign)} benign texts; default threshold "
        f"{DEFAULT_INJECTION_THRESHOLD})"
    )
    print("  threshold  recall  false-positive rate   rules-only recall/FPR")
    rule_hits_malicious = sum(
        injection.rule_scan(row["text"])[0] >= DEFAULT_INJECTION_THRESHOLD
        for row in rows
        if row["label"] == "malicious"
    )
    rule_hits_benign = sum(
        injection.rule_scan(row["text"])[0] >= DEFAULT_INJECTION_THRESHOLD for row in rows if row["label"] == "benign"
    )
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        recall = sum(finding.score >= threshold for finding in malicious) / len(malicious)
        false_positive_rate = sum(finding.score >= threshold for finding in benign) / len(benign)
        extra = ""
        if threshold == DEFAULT_INJECTION_THRESHOLD:
            extra = f"   {rule_hits_malicious / len(malicious):.3f} / {rule_hits_benign / len(benign):.3f}"
        print(f"  {threshold:9.1f}  {recall:6.3f}  {false_positive_rate:19.3f}{extra}")


def pii_figures() -> None:
    from compliance.guardrails import pii

    true_positive: Counter[str] = Counter()
    false_positive: Counter[str] = Counter()
    false_negative: Counter[str] = Counter()
    for row in load("pii_eval.jsonl"):
        expected = {(span["entity"], span["start"], span["end"]) for span in row["spans"]}
        found = {(span.entity, span.start, span.end) for span in pii.detect(row["text"], ENTITIES)}
        # A found span counts when it overlaps an expected span of the same entity type.
        for entity, start, end in found:
            if any(e == entity and start < e_end and e_start < end for e, e_start, e_end in expected):
                true_positive[entity] += 1
            else:
                false_positive[entity] += 1
        for entity, start, end in expected:
            if not any(f == entity and start < f_end and f_start < end for f, f_start, f_end in found):
                false_negative[entity] += 1
    print("PII (overlap match, same entity type)")
    print("  entity          precision  recall  (tp/fp/fn)")
    for entity in ENTITIES:
        tp, fp, fn = true_positive[entity], false_positive[entity], false_negative[entity]
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        print(f"  {entity:14s}  {precision:9.3f}  {recall:6.3f}  ({tp}/{fp}/{fn})")
    tp, fp, fn = sum(true_positive.values()), sum(false_positive.values()), sum(false_negative.values())
    print(f"  {'all':14s}  {tp / (tp + fp):9.3f}  {tp / (tp + fn):6.3f}  ({tp}/{fp}/{fn})")


def latency_figures(calls: int = 200) -> None:
    from accounts.models import Application, Team
    from compliance.guardrails import services
    from compliance.guardrails.models import GuardrailPolicy
    from core.classification import Clearance

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="bench")
    application = Application.objects.create(team=team, name="bench-app")
    GuardrailPolicy.objects.create(
        application=application, pii_input="redact", pii_output="redact", injection="flag", restore_pii_in_response=True
    )
    policy = services.policy_for_application(application.id)
    messages = [
        {"role": "system", "content": "You are a helpful support assistant for Acme. Answer briefly and politely."},
        {
            "role": "user",
            "content": "Hi, my order 5591 has not arrived. You can reach me at dana@example.com. "
            "Can you check the status and tell me when it will be delivered?",
        },
    ]
    answer = (
        "Thanks for reaching out. Order 5591 left our warehouse yesterday and should arrive within two "
        "business days; we will email <EMAIL_1> with the tracking link."
    )
    services.check_input(policy=policy, messages=messages)  # load models
    input_times, output_times = [], []
    for _ in range(calls):
        start = time.perf_counter()
        check = services.check_input(policy=policy, messages=messages)
        input_times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        services.check_output(
            policy=policy,
            text=answer,
            caller_clearance=Clearance.INTERNAL,
            team_id=team.id,
            restore_map=check.restore_map,
        )
        output_times.append((time.perf_counter() - start) * 1000)

    print(f"Latency added per call ({calls} calls; system + user message, PII redact + injection flag)")
    for name, values in (("check_input", input_times), ("check_output", output_times)):
        print(f"  {name:12s}  p50 {statistics.median(values):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms")


if __name__ == "__main__":
    print_header()
    injection_figures()
    pii_figures()
    latency_figures()
