-- LangChain SQLChatMessageHistory (`message_store`): one message_to_dict() JSON per row.
-- Runs on PostgreSQL, MariaDB/MySQL and SQLite (MariaDB/MySQL: NO_BACKSLASH_ESCAPES).
CREATE TABLE message_store (
    id INTEGER PRIMARY KEY,
    session_id VARCHAR(255) NOT NULL,
    message TEXT NOT NULL
);

INSERT INTO message_store VALUES
(1, 'user-42', '{"type": "system", "data": {"content": "You are a helpful weather bot.", "additional_kwargs": {}, "response_metadata": {}, "type": "system", "name": null, "id": null}}'),
(2, 'user-42', '{"type": "human", "data": {"content": "Weather in Paris and Tokyo? ☀️", "additional_kwargs": {}, "response_metadata": {}, "type": "human", "name": null, "id": null, "example": false}}'),
(3, 'user-7', '{"type": "human", "data": {"content": [{"type": "text", "text": "この写真はどこですか?"}, {"type": "image_url", "image_url": {"url": "https://example.com/kyoto.jpg"}}], "additional_kwargs": {}, "response_metadata": {}, "type": "human", "name": null, "id": null, "example": false}}'),
(4, 'user-42', '{"type": "ai", "data": {"content": "", "additional_kwargs": {"tool_calls": [{"id": "call_p1", "function": {"arguments": "{\"city\": \"Paris\"}", "name": "get_weather"}, "type": "function"}, {"id": "call_t1", "function": {"arguments": "{\"city\": \"Tokyo\"}", "name": "get_weather"}, "type": "function"}]}, "response_metadata": {"finish_reason": "tool_calls", "model_name": "gpt-4o-mini"}, "type": "ai", "name": null, "id": "run-8f1c2d", "example": false, "tool_calls": [{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_p1", "type": "tool_call"}, {"name": "get_weather", "args": {"city": "Tokyo"}, "id": "call_t1", "type": "tool_call"}], "invalid_tool_calls": [], "usage_metadata": {"input_tokens": 52, "output_tokens": 40, "total_tokens": 92}}}'),
(5, 'user-42', '{"type": "tool", "data": {"content": "rain, 11 C", "additional_kwargs": {}, "response_metadata": {}, "type": "tool", "name": "get_weather", "id": null, "tool_call_id": "call_p1", "artifact": null, "status": "success"}}'),
(6, 'user-42', '{"type": "tool", "data": {"content": "sunny, 18 C", "additional_kwargs": {}, "response_metadata": {}, "type": "tool", "name": "get_weather", "id": null, "tool_call_id": "call_t1", "artifact": null, "status": "success"}}'),
(7, 'user-7', '{"type": "ai", "data": {"content": "京都の伏見稲荷大社です。⛩️", "additional_kwargs": {}, "response_metadata": {"finish_reason": "stop"}, "type": "ai", "name": null, "id": "run-77aa01", "example": false, "tool_calls": [], "invalid_tool_calls": [], "usage_metadata": null}}'),
(8, 'user-42', '{"type": "ai", "data": {"content": "Paris: rain, 11 C. Tokyo: sunny, 18 C.", "additional_kwargs": {}, "response_metadata": {"finish_reason": "stop"}, "type": "ai", "name": null, "id": "run-8f1c2e", "example": false, "tool_calls": [], "invalid_tool_calls": [], "usage_metadata": null}}'),
(9, 'legacy-1', '{"type": "human", "data": {"content": "Convert 100 USD to EUR", "additional_kwargs": {}, "type": "human", "example": false}}'),
(10, 'legacy-1', '{"type": "ai", "data": {"content": "", "additional_kwargs": {"function_call": {"name": "convert", "arguments": "{\"amount\": 100, \"from\": \"USD\", \"to\": \"EUR\"}"}}, "type": "ai", "example": false}}'),
(11, 'legacy-1', '{"type": "function", "data": {"content": "92.4 EUR", "additional_kwargs": {}, "type": "function", "name": "convert"}}'),
(12, 'legacy-1', '{"type": "ai", "data": {"content": "100 USD is 92.40 EUR.", "additional_kwargs": {}, "type": "ai", "example": false}}');
