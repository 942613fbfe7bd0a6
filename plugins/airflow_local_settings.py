"""Imported by Airflow at start-up in every process (scheduler, api-server, CLI...): the bundle's
workarounds for bugs of the pinned Airflow, so the UI's Clear and `airflow tasks clear` work."""

from medallion import compat

__all__: list[str] = []  # no cluster policies here

compat.apply_all()
