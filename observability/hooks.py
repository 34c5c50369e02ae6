"""What observability tells, and asks, the apps above it (they register receivers at start-up).

The call recorder's storing transaction sets off work that belongs to higher floors (costs'
rollups and budget settlement, prompts' experiment exposures); observability declares the
hooks here and never imports those apps (core.hooks explains the pattern).

`call_cost` is a `core.hooks.Question`: one receiver, whose answer is returned.
"""

from __future__ import annotations

from decimal import Decimal

from core.hooks import Hook, Question

# New calls were stored (inside the storing transaction, once per call: a replayed record
# is never passed again): keyword `calls`, the stored Call rows. Costs adds them to its
# rollups, prompts records the experiment exposures they served.
calls_stored: Hook[...] = Hook("observability.calls_stored", required=True)

# Budget reservations closed by stored calls are due (inside the same transaction, last
# before its commit, so that the budget rows stay locked briefly): keyword `settlements`, the
# records' `budget_settlement` values. Costs settles them.
settlements_due: Hook[...] = Hook("observability.settlements_due", required=True)

# What an ingested call cost, for a record that does not state it: keywords `team_id`,
# `model`, `input_tokens`, `output_tokens`, `cached_tokens`, `at`. Costs answers with its prices.
call_cost: Question[..., Decimal] = Question("observability.call_cost")
