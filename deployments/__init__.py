"""How medflow runs unattended: schedules, event triggers, work pools, the GPU concurrency limit, the local server."""
