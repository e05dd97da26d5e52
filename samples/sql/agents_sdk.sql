-- OpenAI Agents SDK sessions (SQLiteSession / SQLAlchemySession): one Responses input item
-- per row. Runs on PostgreSQL, MariaDB/MySQL and SQLite (MariaDB/MySQL: NO_BACKSLASH_ESCAPES).
CREATE TABLE agent_sessions (
    session_id VARCHAR(255) PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE agent_messages (
    id INTEGER PRIMARY KEY,
    session_id VARCHAR(255) NOT NULL REFERENCES agent_sessions (session_id) ON DELETE CASCADE,
    message_data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

INSERT INTO agent_sessions VALUES
('market-1', '2025-08-31 17:19:29', '2025-08-31 17:21:02'),
('support-9', '2025-09-02 08:00:00', '2025-09-02 08:00:40');

INSERT INTO agent_messages VALUES
(1, 'market-1', '{"content": "What are the top 2 tech companies? 📈", "role": "user"}', '2025-08-31 17:19:29'),
(2, 'market-1', '{"id": "rs_01", "summary": [{"text": "Look up the ranking first.", "type": "summary_text"}], "type": "reasoning"}', '2025-08-31 17:19:31'),
(3, 'market-1', '{"arguments": "{\"query\":\"top companies in technology\",\"limit\":2}", "call_id": "call_9Xf2", "name": "get_top_companies", "type": "function_call", "id": "fc_01", "status": "completed"}', '2025-08-31 17:19:31'),
(4, 'support-9', '{"content": "我的订单在哪里?", "role": "user"}', '2025-09-02 08:00:00'),
(5, 'market-1', '{"call_id": "call_9Xf2", "output": "```json\n[\"Apple\", \"Microsoft\"]\n```", "type": "function_call_output"}', '2025-08-31 17:19:32'),
(6, 'market-1', '{"id": "ws_01", "action": {"type": "search", "query": "Apple Microsoft market cap 2025"}, "status": "completed", "type": "web_search_call"}', '2025-08-31 17:19:40'),
(7, 'market-1', '{"id": "msg_01", "content": [{"annotations": [{"type": "url_citation", "url": "https://example.com/caps", "title": "Market caps", "start_index": 0, "end_index": 5}], "text": "Apple and Microsoft lead the sector.", "type": "output_text", "logprobs": []}], "role": "assistant", "status": "completed", "type": "message"}', '2025-08-31 17:19:41'),
(8, 'support-9', '{"arguments": "{\"order\":\"A-1001\"}", "call_id": "", "name": "track_order", "type": "function_call", "id": "__fake_id__"}', '2025-09-02 08:00:01'),
(9, 'support-9', '{"call_id": "", "output": "shipped, arrives Friday", "type": "function_call_output"}', '2025-09-02 08:00:02'),
(10, 'support-9', '{"id": "__fake_id__", "content": [{"annotations": [], "text": "您的订单已发货,周五到达。", "type": "output_text"}], "role": "assistant", "status": "completed", "type": "message"}', '2025-09-02 08:00:03');
