"""The token estimate against every real recorded call with known input tokens."""

from __future__ import annotations

import pytest

from migrate.context.count import count_items
from migrate.context.models import ModelSpec, model_spec
from tests.context.recordings import RecordedCall, recorded_calls

CALLS = list(recorded_calls())
TEXT_ONLY = [call for call in CALLS if call.text_only]
# gpt-5.6 is recorded but its limit is not published: it is counted like the gpt-5 family
COUNTED_AS = {"gpt-5.6": "gpt-5"}


def spec_for(call: RecordedCall) -> ModelSpec:
    name = str(call.request["model"])
    return model_spec(COUNTED_AS.get(name, name))


def by_name(suffix: str) -> list[RecordedCall]:
    return [call for call in CALLS if call.name.endswith(suffix)]


def test_the_recordings_cover_both_families() -> None:
    models = {str(call.request["model"]) for call in TEXT_ONLY}
    assert len(TEXT_ONLY) >= 20
    assert {"gpt-4o-mini", "gpt-5", "gpt-5-mini", "gpt-5.5"} <= models


@pytest.mark.parametrize("call", TEXT_ONLY, ids=lambda call: call.name)
def test_text_only_inputs_are_counted_exactly(call: RecordedCall) -> None:
    count = count_items(call.items, spec_for(call))
    assert not count.estimated
    assert count.total == call.input_tokens


def test_a_function_call_and_its_output_cost_what_the_recording_says() -> None:
    # the second call continues the first (previous_response_id) with the same tools: its input
    # is the first call's input, the function call the model made, and the output sent back
    first, second = by_name("ResponsesTests_FunctionCallWorks.json#0") + by_name(
        "ResponsesTests_FunctionCallWorks.json#1"
    )
    call = {
        key: first.response["output"][0][key] for key in ("type", "call_id", "name", "arguments")
    }
    model = spec_for(first)
    added = count_items([call, *second.request["input"]], model)
    assert sum(added.per_item) == second.input_tokens - first.input_tokens


def test_an_image_is_estimated_within_a_tenth_of_a_percent() -> None:
    (call,) = by_name("ResponseStoreTests_GetInputItemsWithMultiPartPagination.json#0")
    count = count_items(call.items, spec_for(call))
    assert count.estimated and count.images == 1 and count.files_uncounted == 1
    assert abs(count.total - call.input_tokens) <= call.input_tokens / 1000


def test_a_pdf_is_not_counted_and_the_estimate_says_so() -> None:
    (call,) = by_name("ResponsesTests_FileInputFromBinaryWorks.json#0")
    count = count_items(call.items, spec_for(call))
    assert count.files_uncounted == 1
    assert "not counted" in count.describe_estimate()
    # what is missing is the PDF's text: 12 tokens for this one-page file
    assert call.input_tokens - count.total == 12
