"""Bounds on everything evaluations stores: one place, so that the API, imports, calls copied into
datasets and the scorers refuse the same sizes with the same messages.

Every dimension a client controls is bounded: a dataset's live items, one batch or import, the
text of one string and of one item, facts, documents, tags, messages, variables, metadata keys
and JSON nesting. An item is stored as JSON and read back by every run; an unbounded one would
make every run over its dataset pay for it.
"""

from __future__ import annotations

MAX_DATASETS_PER_TEAM = 1_000
MAX_ITEMS_PER_DATASET = 100_000  # live items at one version
MAX_ITEMS_PER_BATCH = 10_000  # one add/update/remove request, one import, one copy from calls
MAX_IMPORT_BYTES = 20 * 1024 * 1024  # an uploaded JSONL or CSV file
MAX_IMPORT_LINE_CHARS = 1_000_000  # one line of JSONL (one CSV record)
MAX_REPORTED_ERRORS = 50  # bad lines listed in one refusal (the count of all of them is given)

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_TEXT_CHARS = 100_000  # one string anywhere in an item
MAX_ITEM_CHARS = 400_000  # all the text of one item
MAX_MESSAGES = 200
MAX_VARIABLES = 100
MAX_FACTS = 50
MAX_FACT_CHARS = 2_000
MAX_DOCUMENTS = 20
MAX_DOCUMENT_ID_CHARS = 200
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_METADATA_KEYS = 50
MAX_JSON_DEPTH = 16  # metadata, variables and an item's other JSON
MAX_JSON_INTEGER = 2**63 - 1  # larger integers are refused (other tools' int64 readers)

MAX_SCHEMA_CHARS = 50_000  # a dataset's item schema, a JSON Schema scorer's schema (as JSON text)
MAX_SCORER_CONFIGS_PER_TEAM = 500
MAX_BRAND_POLICIES_PER_TEAM = 200
MAX_POLICY_ENTRIES = 500  # phrases, competitors, disclaimers, claims of one brand policy
MAX_POLICY_ENTRY_CHARS = 2_000
MAX_REGEX_CHARS = 2_000
REGEX_TIMEOUT_SECONDS = 0.25  # one regex match in a scorer or a schema's `pattern`

MAX_SCORED_OUTPUT_CHARS = 200_000  # the output one scorer call will look at

# Eval runs
MAX_RUN_REPEATS = 10  # each item called this many times
MAX_RUN_SCORERS = 20
MAX_RUN_RESULTS = 200_000  # items x repeats of one run
MAX_ACTIVE_RUNS_PER_TEAM = 20
MAX_JUDGE_REPEATS = 5  # judge samples per scored output (their spread shows a flaky judge)
MAX_JUDGE_ATTEMPTS = 5  # judge calls per sample while its output does not parse
MAX_RUBRIC_CHARS = 10_000
MAX_OUTPUT_STORED_CHARS = 200_000  # a target's answer stored on a result
