"""Prefect flows and the ``medflow`` command-line interface."""
