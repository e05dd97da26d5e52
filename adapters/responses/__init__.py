"""Responses API histories: item files (`records`, `items`) and live `previous_response_id`
chains exported through the `openai` SDK (`chains`)."""
