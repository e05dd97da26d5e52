"""Assistants API threads: exported files, the live API, dumps and the timeline builder."""
