"""Reporting the verdicts: the report's JSON, the terminal table, the page, the plots, the
nightly diff, regression baselines, writing outputs all or none, and ``explain``'s walk of a
step line by line."""
