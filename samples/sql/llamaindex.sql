-- LlamaIndex SQLAlchemyChatStore (`llama_index_memory`): one ChatMessage JSON per row,
-- `timestamp` in nanoseconds. Runs on PostgreSQL, MariaDB/MySQL and SQLite.
CREATE TABLE llama_index_memory (
    id INTEGER PRIMARY KEY,
    "key" VARCHAR(255) NOT NULL,
    "timestamp" BIGINT NOT NULL,
    role VARCHAR(32) NOT NULL,
    status VARCHAR(16) NOT NULL,
    data TEXT NOT NULL
);

INSERT INTO llama_index_memory VALUES
(1, 'user_1', 1740819600000000000, 'user', 'archived', '{"role": "user", "additional_kwargs": {}, "blocks": [{"block_type": "text", "text": "Hi! I am planning a trip to Lisbon. 🇵🇹"}]}'),
(2, 'user_1', 1740819601000000000, 'assistant', 'archived', '{"role": "assistant", "additional_kwargs": {}, "blocks": [{"block_type": "text", "text": "Great choice. When are you going?"}]}'),
(3, 'user_1', 1740819660000000000, 'user', 'active', '{"role": "user", "additional_kwargs": {}, "blocks": [{"block_type": "text", "text": "In May. What is the weather like?"}]}'),
(4, 'user_1', 1740819661000000000, 'assistant', 'active', '{"role": "assistant", "additional_kwargs": {"tool_calls": [{"id": "call_lis", "type": "function", "function": {"name": "climate", "arguments": "{\"city\": \"Lisbon\", \"month\": 5}"}}]}, "blocks": []}'),
(5, 'user_1', 1740819662000000000, 'tool', 'active', '{"role": "tool", "additional_kwargs": {"tool_call_id": "call_lis", "name": "climate"}, "blocks": [{"block_type": "text", "text": "avg high 22 C, little rain"}]}'),
(6, 'user_1', 1740819663000000000, 'assistant', 'active', '{"role": "assistant", "additional_kwargs": {}, "blocks": [{"block_type": "text", "text": "Warm and mostly dry: about 22 C."}]}'),
(7, 'old_user', 1700000000000000000, 'user', 'active', '{"role": "user", "additional_kwargs": {}, "content": "Bonjour, ça va ?"}'),
(8, 'old_user', 1700000001000000000, 'assistant', 'active', '{"role": "assistant", "additional_kwargs": {}, "content": "Très bien, merci !"}');
