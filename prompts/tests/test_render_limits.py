"""One prompt render cannot exhaust the server: what allocates is checked before it runs, the
steps and the output are counted, and too-deep templates are a 400 when saved."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from core.errors import ValidationFailed
from core.testing import assert_openai_error
from prompts import services, templating
from prompts.models import PromptVersion
from prompts.tests.conftest import BASE, version

HTMX = {"HTTP_HX_REQUEST": "true"}

# Each of these would allocate at least 100 MB (or compute for minutes) before the limits.
BOMBS = {
    "string repetition": "{{ 'a' * 100000000 }}",
    "list repetition": "{{ ([1] * 100000000)|length }}",
    "power": "{{ 2 ** 100000000 }}",
    "printf width": "{{ '%100000000s' % 'a' }}",
    "printf width from an argument": "{{ '%*s' % (100000000, 'a') }}",
    "format width": "{{ '{:>100000000}'.format('a') }}",
    "nested format width": "{{ '{:>{}}'.format('a', 100000000) }}",
    "padding method": "{{ 'a'.ljust(100000000) }}",
    "center filter": "{{ 'a'|center(100000000) }}",
    "format filter": "{{ '%100000000s'|format('a') }}",
    "indent filter": "{{ ('a\\n' * 1000)|indent(1000000) }}",
    "lipsum": "{{ lipsum(1000000) }}",
    "doubling by ~": "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling by +": "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "growing by replace": (
        "{% set ns = namespace(s='aaaa') %}{% for i in range(40) %}{% set ns.s = ns.s|replace('a', 'aa') %}{% endfor %}"
    ),
    "doubling a list in place": "{% set l = [1] %}{% for i in range(40) %}{% set _ = l.extend(l) %}{% endfor %}",
    "doubling an integer's digits": (
        "{% set ns = namespace(x=10) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}"
    ),
    "doubling a captured block": (
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set t %}{{ ns.s }}{{ ns.s }}{% endset %}"
        "{% set ns.s = t %}{% endfor %}"
    ),
    "a huge range": "{% for i in range(100000000) %}{% endfor %}",
}


@pytest.mark.parametrize("source", BOMBS.values(), ids=list(BOMBS))
def test_operations_that_would_allocate_past_the_limit_are_refused_naming_it(source, settings):
    settings.PROMPT_RENDER_MAX_CHARS = 1_000_000
    templating.check_template(source, where="messages[0].content")

    with pytest.raises(ValidationFailed) as refused:
        templating.render_template(source, {}, where="messages[0].content")

    assert refused.value.code == "template_output_too_large"
    assert refused.value.param == "messages[0].content"
    assert "PROMPT_RENDER_MAX_CHARS (1,000,000)" in refused.value.message or "bits" in refused.value.message


# Checked before they run (the message names the operation, not its result): each would first
# allocate 100 MB or more, then be refused.
CHECKED_BEFORE = {
    "bytes padding": ("{{ 'a'.encode().ljust(100000000)|length }}", "bytes.ljust()"),
    "bytes printf width": ("{{ '%0100000000d'.encode() % 1 }}", "a formatted value"),
    "int.to_bytes": ("{{ (1).to_bytes(100000000, 'big')|length }}", "int.to_bytes()"),
    # (built by append: `['x' * 90000] * 5000` is now refused as the repeated value, in TEXT_BOMBS)
    "joining many small parts": (
        "{% set l = [] %}{% for i in range(5000) %}{% set _ = l.append('x' * 90000) %}{% endfor %}"
        "{{ ''.join(l)|length }}",
        "str.join()",
    ),
    "joining many small byte parts": (
        "{% set l = [] %}{% for i in range(5000) %}{% set _ = l.append('x'.encode() * 90000) %}{% endfor %}"
        "{{ ''.encode().join(l)|length }}",
        "bytes.join()",
    ),
}


@pytest.mark.parametrize(("source", "operation"), CHECKED_BEFORE.values(), ids=list(CHECKED_BEFORE))
def test_amplifying_calls_are_refused_before_they_allocate(source, operation, settings):
    settings.PROMPT_RENDER_MAX_CHARS = 1_000_000

    with pytest.raises(ValidationFailed) as refused:
        templating.render_template(source, {}, where="messages[0].content")

    assert refused.value.code == "template_output_too_large"
    assert refused.value.message.startswith(f"messages[0].content: {operation} would be ")


# Errors the template's own calls raise: each was a 500.
FAILING = {
    "a missing format field": ("{{ '{x}'.format() }}", "'x'"),
    "a missing positional field": ("{{ '{0}'.format() }}", "tuple index out of range"),
    "pop from an empty list": ("{{ [].pop() }}", "pop from empty list"),
    "a missing printf key": ("{{ '%(a)s' % {} }}", "'a'"),
    "an unknown encoding": ("{{ 'a'.encode('no-such-codec') }}", "unknown encoding: no-such-codec"),
    "an empty cycler": ("{{ cycler().next() }}", "at least one item has to be provided"),
    "a negative truncate length": ("{{ 'x'|truncate(-5) }}", "expected length >= 3, got -5"),
}


@pytest.mark.parametrize(("source", "reason"), FAILING.values(), ids=list(FAILING))
def test_a_template_whose_own_call_fails_is_a_400_naming_the_message(source, reason):
    with pytest.raises(ValidationFailed) as refused:
        templating.render_template(source, {}, where="messages[1].content")

    assert refused.value.param == "messages[1].content"
    assert refused.value.message == f"messages[1].content: the template failed to render: {reason}"


def test_a_template_jinja_cannot_compile_is_a_400_when_saved():
    with pytest.raises(ValidationFailed) as refused:
        templating.check_template("{{ {[]: 1} }}", where="messages[0].content")

    assert (refused.value.code, refused.value.param) == ("template_syntax_error", "messages[0].content")
    assert refused.value.message == "messages[0].content: the template cannot be compiled: unhashable type: 'list'"


LOOPS = {
    "nested loops that write nothing": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "a captured block written by nested loops": (
        "{% set t %}{% for i in range(10000) %}{% for j in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
        "{% endset %}{{ t|length }}"
    ),
    "exponential macro recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    ),
}


@pytest.mark.parametrize("source", LOOPS.values(), ids=list(LOOPS))
def test_renders_are_limited_in_steps(source, settings):
    settings.PROMPT_RENDER_MAX_STEPS = 5_000
    settings.PROMPT_RENDER_MAX_SECONDS = 600.0  # the step limit, not the clock, must stop these

    with pytest.raises(ValidationFailed) as refused:
        templating.render_template(source, {}, where="messages[0].content")

    assert refused.value.code == "template_too_complex"
    assert "PROMPT_RENDER_MAX_STEPS (5,000)" in refused.value.message


def test_renders_are_limited_in_time(settings):
    settings.PROMPT_RENDER_MAX_SECONDS = 0.0  # past its deadline from the first step

    with pytest.raises(ValidationFailed) as refused:
        templating.render_template("{% for i in range(3) %}{{ i }}{% endfor %}", {}, where="messages[0].content")

    assert refused.value.code == "template_too_slow"
    assert "PROMPT_RENDER_MAX_SECONDS (0 s)" in refused.value.message


def test_the_output_is_limited_as_it_is_written(settings):
    settings.PROMPT_RENDER_MAX_CHARS = 1_000

    with pytest.raises(ValidationFailed) as refused:
        templating.render_template("{% for i in range(2000) %}x{% endfor %}", {}, where="messages[0].content")

    assert refused.value.code == "template_output_too_large"
    assert "PROMPT_RENDER_MAX_CHARS (1,000)" in refused.value.message


def test_infinite_recursion_is_a_400(settings):
    with pytest.raises(ValidationFailed) as refused:
        templating.render_template("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, where="m")

    assert refused.value.code == "template_too_complex"


def test_ordinary_templates_render_as_before():
    source = (
        "Hello {{ name|title }}! {% for item in items %}- {{ loop.index }}. {{ item }}{% if not loop.last %}\n"
        "{% endif %}{% endfor %}\n{{ '%5.2f'|format(3.14159) }} {{ '{:>5}'.format('x') }} {{ 'ab' * 3 }} "
        "{{ 2 ** 10 }} {{ ', '.join(items) }} {{ 'x' ~ 1 }} {{ items|length }} {{ 'a-b'.replace('-', '+') }}"
        "{% set block %}captured {{ name }}{% endset %} {{ block|upper }} {{ '%d' % 1234567 }}"
    )

    text = templating.render_template(source, {"name": "ada", "items": ["tea", "cake"]}, where="m")

    assert text == "Hello Ada! - 1. tea\n- 2. cake\n 3.14     x ababab 1024 tea, cake x1 2 a+b CAPTURED ADA 1234567"


DEEP = {
    "25 nested loops": "{% for i in x %}" * 25 + "{% endfor %}" * 25,
    "300 nested ifs": "{% if x %}" * 300 + "{% endif %}" * 300,
    "1,000 nested brackets": "{{ " + "(" * 1000 + "1" + ")" * 1000 + " }}",
    "3,000 chained filters": "{{ x" + "|e" * 3000 + " }}",
}


@pytest.mark.parametrize("source", DEEP.values(), ids=list(DEEP))
def test_templates_too_deep_to_compile_are_a_400_naming_the_message(source):
    with pytest.raises(ValidationFailed) as refused:
        templating.check_template(source, where="messages[2].content")

    assert refused.value.code == "template_too_deeply_nested"
    assert refused.value.param == "messages[2].content"


# Through the API and the playground ----------------------------------------------------


@pytest.fixture
def support(team_a, make_prompt):
    prompt = make_prompt(team_a.team)
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    return prompt


@pytest.fixture
def bomb(team_a, make_prompt, client_for):
    prompt = make_prompt(team_a.team, name="bomb")
    response = client_for(team_a.members["prompt_engineer"]).post(
        f"{BASE}bomb/versions/", {"messages": [{"role": "user", "content": "{{ 'a' * 100000000 }}"}]}, format="json"
    )
    assert response.status_code == 201, response.content
    return prompt


def test_the_render_api_answers_a_template_bomb_with_a_400_naming_the_limit(team_a, client_for, bomb):
    response = client_for(team_a.members["viewer"]).post(f"{BASE}bomb/render/", {"label": "latest"}, format="json")

    error = assert_openai_error(response, 400, code="template_output_too_large", param="messages[0].content")
    assert "PROMPT_RENDER_MAX_CHARS" in error["message"]


def test_the_playground_answers_a_template_bomb_with_a_400_naming_the_limit(team_a, page_client_for, bomb):
    latest = version(bomb, PromptVersion.objects.filter(prompt=bomb).count())
    client = page_client_for(team_a.members["viewer"])

    response = client.post(
        f"/prompts/{bomb.id}/playground/", {"version": str(latest.number), "variables": json.dumps({})}, **HTMX
    )

    assert response.status_code == 400
    assert "PROMPT_RENDER_MAX_CHARS" in response.content.decode()


def test_a_too_deep_template_is_refused_when_saved_and_nothing_is_stored(team_a, make_prompt, client_for):
    prompt = make_prompt(team_a.team, name="deep")
    before = PromptVersion.objects.filter(prompt=prompt).count()

    response = client_for(team_a.members["prompt_engineer"]).post(
        f"{BASE}deep/versions/", {"messages": [{"role": "user", "content": DEEP["25 nested loops"]}]}, format="json"
    )

    assert_openai_error(response, 400, code="template_too_deeply_nested", param="messages[0].content")
    assert PromptVersion.objects.filter(prompt=prompt).count() == before


def test_the_render_api_refuses_payloads_over_the_request_limits_naming_them(team_a, client_for, settings, support):
    settings.REQUEST_MAX_DOCUMENTS = 2
    settings.REQUEST_MAX_TEXT_CHARS = 100
    settings.REQUEST_MAX_TOTAL_CHARS = 150
    client = client_for(team_a.members["viewer"])
    variables = {"product": "Acme", "customer_name": "Ada", "question": "?"}

    documents = [{"id": str(index), "text": "x"} for index in range(3)]
    too_many = client.post(f"{BASE}support/render/", {"variables": variables, "documents": documents}, format="json")
    too_long = client.post(f"{BASE}support/render/", {"variables": {**variables, "question": "q" * 101}}, format="json")
    too_much = client.post(
        f"{BASE}support/render/",
        {"variables": variables, "history": [{"role": "user", "content": "h" * 80}] * 2},
        format="json",
    )

    assert "REQUEST_MAX_DOCUMENTS" in assert_openai_error(too_many, 400, code="too_many_documents")["message"]
    error = assert_openai_error(too_long, 400, code="text_too_long", param="variables.question")
    assert "REQUEST_MAX_TEXT_CHARS" in error["message"]
    assert "REQUEST_MAX_TOTAL_CHARS" in assert_openai_error(too_much, 400, code="request_too_large")["message"]


# Turning a container into text: checked before the text is made. Each would write 90 MB or more
# (one process peaked at 680 MB RSS) before the output limit refused it.
NINE_MILLION = "{% set s = 'x' * 900000 %}{% set t = [s, s, s, s, s, s, s, s, s, s] %}"
NINETY_MILLION = NINE_MILLION + "{% set l = [t, t, t, t, t, t, t, t, t, t] %}"
TEXT_BOMBS = {
    "a list of large strings repeated": ("{{ ['x' * 100000] * 1000 }}", "the repeated value"),
    "joining a list of large strings repeated": ("{{ ''.join(['x' * 90000] * 5000)|length }}", "the repeated value"),
    "a printed list literal": (NINE_MILLION + "{{ [s, s, s, s, s, s, s, s, s, s] }}", "the printed value"),
    "a printed nested list": (NINETY_MILLION + "{{ l }}", "the printed value"),
    "the string filter": (NINETY_MILLION + "{{ l|string }}", "the text of the 'string' filter"),
    "the join filter": (NINETY_MILLION + "{{ l|join }}", "the text of the 'join' filter"),
    "the join filter over an attribute": (
        NINETY_MILLION + "{{ [{'a': l}]|join(attribute='a') }}",
        "the text of the 'join' filter",
    ),
    "the tojson filter": (NINETY_MILLION + "{{ l|tojson }}", "the text of the 'tojson' filter"),
    "the tojson filter's indent": ("{{ [[[0] * 1000]]|tojson(indent=100000) }}", "the text of the 'tojson' filter"),
    "the pprint filter": (NINETY_MILLION + "{{ l|pprint }}", "the text of the 'pprint' filter"),
    "the pprint filter's indent by a long key": (
        "{{ {'k' * 500000: [0] * 1000}|pprint }}",
        "the text of the 'pprint' filter",
    ),
    "the format filter": (NINETY_MILLION + "{{ '%s'|format(l) }}", "the text of the 'format' filter"),
    "the escape filter": (NINETY_MILLION + "{{ l|e }}", "the text of the 'e' filter"),
    "printf": (NINETY_MILLION + "{{ '%s' % [l] }}", "the text formatted by '%'"),
    "printf repeating a key": (NINE_MILLION + "{{ ('%(a)s' * 100) % {'a': s} }}", "the text formatted by '%'"),
    "str.format": (NINETY_MILLION + "{{ '{}'.format(l) }}", "the text of str.format()"),
    "str.format repeating a field": (NINE_MILLION + "{{ ('{0}' * 100).format(s) }}", "the text of str.format()"),
    "~": (NINETY_MILLION + "{{ 'a' ~ l }}", "the text joined by '~'"),
    "a namespace": (NINETY_MILLION + "{{ namespace(a=l) }}", "the printed value"),
    "a list shared 2**60 times": (
        "{% set ns = namespace(l=['x' * 1000]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
        "{{ ns.l }}",
        "the printed value",
    ),
    "str.translate": ("{{ ('a' * 1000000).translate({97: 'x' * 900000})|length }}", "str.translate()"),
    "the wordwrap filter": ("{{ ('x' * 900000)|wordwrap(1, wrapstring='y' * 1000)|length }}", "the wrapped text"),
    "the slice filter": ("{{ [1]|slice(100000000)|list|length }}", "the 'slice' filter's number of slices"),
    "the batch filter": ("{{ [1]|batch(100000000, 0)|list|length }}", "the 'batch' filter's batch size"),
}


@pytest.mark.parametrize(("source", "operation"), TEXT_BOMBS.values(), ids=list(TEXT_BOMBS))
def test_a_container_turned_into_text_is_refused_before_the_text_is_made(source, operation, settings):
    settings.PROMPT_RENDER_MAX_CHARS = 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ValidationFailed) as refused:
            templating.render_template(source, {}, where="messages[0].content")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert refused.value.code == "template_output_too_large"
    assert refused.value.message.startswith(f"messages[0].content: {operation} would be ")
    assert "PROMPT_RENDER_MAX_CHARS (1,000,000)" in refused.value.message
    assert peak < 20_000_000  # the text would have been 90 MB or more


def test_containers_turned_into_text_render_as_before():
    source = (
        "{{ items }} {{ items|string }} {{ items|join(', ') }} {{ {'b': [1, 2.5], 'a': None}|tojson }} "
        "{{ {'a': items}|pprint }} {{ '%s/%s'|format(*items) }} {{ '%s' % [items] }} {{ '{0}{0}'.format(items) }} "
        "{{ 'x' ~ items }} {{ [items] * 2 }} {{ users|join('+', attribute='name') }} {{ namespace(a=1) }} "
        "{{ items|map('upper')|join }} {{ 'ab'|wordwrap(1) }}"
    )
    users = [{"name": "ada"}, {"name": "bob"}]

    text = templating.render_template(source, {"items": ["tea", "cake"], "users": users}, where="m")

    assert text == (
        "['tea', 'cake'] ['tea', 'cake'] tea, cake {\"a\": null, \"b\": [1, 2.5]} {'a': ['tea', 'cake']} tea/cake "
        "[['tea', 'cake']] ['tea', 'cake']['tea', 'cake'] x['tea', 'cake'] [['tea', 'cake'], ['tea', 'cake']] ada+bob "
        "<Namespace {'a': 1}> TEACAKE a\nb"
    )


def test_a_million_numbers_still_print_and_repeat_within_the_limit(settings):
    settings.PROMPT_RENDER_MAX_CHARS = 4_000_000

    text = templating.render_template("{{ [0] * 1000000 }}", {}, where="m")

    assert text == str([0] * 1000000)
