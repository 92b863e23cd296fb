"""The in-process side: accounts, the real client's request, and the contract's answers.

Requests go through the app's test client (`post_logs`, `get_logs`); `assert_error` and
`assert_added` check the contract's answer shapes everywhere. Below the HTTP layer,
`log_rows` builds rows for ``storage.insert_logs`` and `recent_logs` reads them back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot_logging_server.accounts import create_user
from bot_logging_server.storage import LogRow, Storage, StoredLog, utc_now


@dataclass(frozen=True)
class Account:
    """A user created for one test: name, token in clear, and id."""

    name: str
    token: str
    id: int


async def new_account(
    storage: Storage, password: str | None = None, name: str | None = None
) -> Account:
    """Create a user with a unique name (or `name`) in `storage`; return its `Account`."""
    name = name or f"u_{uuid.uuid4().hex[:10]}"
    new = await create_user(storage, name, password)
    return Account(name, new.token, new.user.id)


CLIENT_PATH = "//send_logs"  # what the real client requests: host + "/" + "/send_logs"


def client_record(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """One record exactly as RemoteLogger builds it (integer level, naive UTC seconds)."""
    record = {
        "level": (30, 40, 50)[i % 3],
        "event_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "msg": f"message {i}",
        "p_description": "billing",
    }
    record.update(overrides)
    return record


def client_body(user: str, logs: list[dict[str, Any]] | int = 1, **data: Any) -> dict[str, Any]:
    """A batch as the real client sends it; `logs` is a list of records or how many."""
    if isinstance(logs, int):
        logs = [client_record(i) for i in range(logs)]
    body = {
        "post_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "pid": 4242,
        "p_name": "python3",
        "logs": logs,
        "user": user,
    }
    body.update(data)
    return {"data": body}


def client_headers(token: str) -> dict[str, str]:
    """The real client's headers."""
    return {"Content-Type": "application/json", "X-User-Token": token}


async def post_logs(
    client: Any,
    account: Any,
    body: Any = None,
    path: str = CLIENT_PATH,
    token: str | None = None,
    **kwargs: Any,
) -> Any:
    """POST a batch as `account` (default body: one client record)."""
    body = client_body(account.name) if body is None else body
    headers = client_headers(account.token if token is None else token)
    if isinstance(body, (bytes, str)):
        return await client.post(path, data=body, headers=headers, **kwargs)
    return await client.post(path, json=body, headers=headers, **kwargs)


async def assert_error(response: Any, status: int, message: str) -> dict[str, Any]:
    """The contract's error shape: that status, JSON, ``{"code", "message"}``, no traceback."""
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = await response.get_json()
    assert body["code"] == status
    assert body["message"] == message
    text = await response.get_data(as_text=True)
    assert "Traceback" not in text and "SELECT" not in text and "INSERT" not in text
    return body


async def assert_added(response: Any, added: int) -> None:
    """The contract's 200: ``{"code": 200, "message": "Logs added successfully"}`` (+ added)."""
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.content_type == "application/json"
    assert await response.get_json() == {
        "code": 200,
        "message": "Logs added successfully",
        "added": added,
    }


def read_headers(account: Any, bearer: bool = False) -> dict[str, str]:
    """The read side's headers for `account`: ``X-User`` and its token (or a Bearer token)."""
    if bearer:
        return {"X-User": account.name, "Authorization": f"Bearer {account.token}"}
    return {"X-User": account.name, "X-User-Token": account.token}


async def get_logs(client: Any, account: Any, **params: Any) -> dict[str, Any]:
    """``GET /api/logs`` as `account` with `params`; assert 200 and answer the JSON body."""
    response = await client.get("/api/logs", query_string=params, headers=read_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def log_rows(n: int, tag: str = "m", p_name: str | None = "proc") -> list[LogRow]:
    """`n` rows for ``storage.insert_logs``, messages ``"TAG 0"``, ``"TAG 1"``, ...; a
    `p_name` of None makes rows the database refuses."""
    now = utc_now()
    return [
        LogRow(
            pid=1,
            p_name=p_name,  # type: ignore[arg-type]  # None: a row the database refuses
            p_description="group",
            level=40,
            msg=f"{tag} {i}",
            truncated=False,
            msg_length=len(f"{tag} {i}"),
            event_at=now,
            post_time=now,
        )
        for i in range(n)
    ]


async def recent_logs(storage: Storage, user_id: int, limit: int = 100) -> list[StoredLog]:
    """`user_id`'s newest stored rows, newest first, read with SQL of its own (not the API's
    queries), through the backend's connection."""
    rows = await storage.db.fetch(
        "SELECT id, user_id, pid, p_name, p_description, level, msg, truncated, msg_length, "
        "event_at, post_time, received_at FROM user_logs WHERE user_id = ? "
        "ORDER BY id DESC LIMIT ?",
        (user_id, limit),
    )
    return [StoredLog.from_row(row, storage.db.dialect.decode_time) for row in rows]


def counting_quart(app: Any) -> list[str]:
    """The paths of the requests Quart itself handles from now on (the ones no lane of
    `bot_logging_server.lanes` served): wraps `app`'s ``handle_request``."""
    handled: list[str] = []
    handle = app.app.handle_request

    async def counting(request: Any) -> Any:
        handled.append(request.path)
        return await handle(request)

    app.app.handle_request = counting
    return handled
