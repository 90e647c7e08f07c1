"""Datasets: reading, formats and validation, conversion, token statistics, builders, templates."""
