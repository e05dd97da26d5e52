-- One row per message, as many apps store chat history. Runs on PostgreSQL, MariaDB/MySQL
-- and SQLite (MariaDB/MySQL: load with sql_mode NO_BACKSLASH_ESCAPES, see README.md).
CREATE TABLE chat_messages (
    id INTEGER PRIMARY KEY,
    conversation_id VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    role VARCHAR(16) NOT NULL,
    content TEXT,
    tool_calls TEXT,
    tool_call_id VARCHAR(64),
    author VARCHAR(64),
    channel VARCHAR(32)
);

-- Two conversations whose rows are interleaved; row 4 was back-filled, so `id` order is not
-- message order: order by (created_at, id).
INSERT INTO chat_messages VALUES
(1, 'conv-trip', '2025-03-01 09:00:00', 'system', 'You are a travel assistant. Answer briefly.', NULL, NULL, NULL, 'web'),
(2, 'conv-trip', '2025-03-01 09:00:05', 'user', 'What is the weather in Paris and in Tokyo? ☀️', NULL, NULL, 'ana', 'web'),
(3, 'conv-faq', '2025-03-01 09:01:00', 'user', '東京の天気はどうですか?', NULL, NULL, 'ken', 'mobile'),
(4, 'conv-faq', '2025-03-01 09:01:30', 'assistant', '東京は晴れです。最高気温は18度です。🌤️', NULL, NULL, NULL, 'mobile'),
(5, 'conv-trip', '2025-03-01 09:00:06', 'assistant', NULL, '[{"id": "call_wx_paris", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}, {"id": "call_wx_tokyo", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Tokyo\"}"}}]', NULL, NULL, 'web'),
(6, 'conv-trip', '2025-03-01 09:00:07', 'tool', '{"city": "Paris", "sky": "rain", "high_c": 11}', NULL, 'call_wx_paris', 'get_weather', 'web'),
(7, 'conv-trip', '2025-03-01 09:00:07', 'tool', '{"city": "Tokyo", "sky": "sun", "high_c": 18}', NULL, 'call_wx_tokyo', 'get_weather', 'web'),
(8, 'conv-trip', '2025-03-01 09:00:09', 'assistant', 'Paris: rain, 11 °C. Tokyo: sunny, 18 °C.', NULL, NULL, NULL, 'web'),
(9, 'conv-faq', '2025-03-01 09:00:59', 'system', 'Reply in the language of the question.', NULL, NULL, NULL, 'mobile');
