"""Tests of sql/: the report definition, its T-SQL and the TDS dev server."""
