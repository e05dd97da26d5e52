"""Move legacy chat history into the OpenAI Conversations API, exactly once, with a report."""

__version__ = "0.1.0"
