"""Offline retrieval evaluation: question files -> per-question results -> metrics, JSON, Markdown, plots."""
