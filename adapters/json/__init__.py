"""JSON and JSONL files: framing, format detection and one reader per file format."""
