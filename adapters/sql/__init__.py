"""SQL databases: table and query readers, value decoding and framework presets."""
