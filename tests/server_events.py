"""Reading events back from the test's Prefect server (REST ``POST /events/filter``), for tests that assert on
what a flow emitted."""

from __future__ import annotations

import asyncio


async def read_events(name: str, resource_id: str | None = None, limit: int = 50) -> list[dict]:
    """Events called ``name`` (optionally of one resource id) the server holds, newest first."""
    from prefect import get_client

    event_filter: dict = {"event": {"name": [name]}}
    if resource_id is not None:
        event_filter["resource"] = {"id": [resource_id]}
    async with get_client() as client:
        response = await client._client.post("/events/filter", json={"filter": event_filter, "limit": limit})
        response.raise_for_status()
        return response.json()["events"]


def events(name: str, resource_id: str | None = None, limit: int = 50) -> list[dict]:
    """:func:`read_events` from synchronous code."""
    return asyncio.run(read_events(name, resource_id, limit))
