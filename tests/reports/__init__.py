"""Tests of come.reports (summary, tables, bootstrap, figures, index)."""
