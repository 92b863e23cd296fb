"""The read API's seed: `SEED`, the records the filter and stats tests read, and
`send_seed`, which posts them as an account."""

from __future__ import annotations

import itertools

from support.client import client_body, client_record, get_logs, post_logs

# (level, msg, event_at, p_description, p_name, pid): the records every filter test reads.
SEED = [
    (10, "debug start", "2024-03-01T09:00:00", "web", "python3", 100),
    (20, "user logged in", "2024-03-01T10:00:00", "web", "python3", 100),
    (30, "disk 85% full", "2024-03-01T10:30:00", "disk", "python3", 100),
    (40, "Payment FAILED for order_17", "2024-03-01T11:00:00", "billing", "worker", 200),
    (50, "ÉCHEC critique", "2024-03-02T08:00:00", "billing", "worker", 200),
    (40, {"order": 17, "error": "card declined"}, "2024-03-02T09:00:00", "billing", "worker", 200),
    (35, "custom level payment retry", "2024-03-03T00:00:00", "retry", "worker", 201),
]


async def send_seed(client, account):
    """POST `SEED` as `account` (one batch per process); answer the stored ids in SEED order."""
    for (p_name, pid), group in itertools.groupby(SEED, key=lambda s: (s[4], s[5])):
        logs = [
            client_record(level=level, msg=msg, event_at=event_at, p_description=desc)
            for level, msg, event_at, desc, _, _ in group
        ]
        response = await post_logs(
            client, account, client_body(account.name, logs, p_name=p_name, pid=pid)
        )
        assert response.status_code == 200
    ids = [r["id"] for r in (await get_logs(client, account, limit=100))["logs"]]
    assert len(ids) == len(SEED)
    return ids[::-1]
