"""``GET /healthz``: 200 when the database answers, 503 (contract shape) when it does not."""

from __future__ import annotations

from support import assert_error


async def test_healthz_is_200_ok_when_the_database_answers(client, backend):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {
        "code": 200,
        "message": "OK",
        "status": "ok",
        "storage": backend,
    }


async def test_healthz_is_503_with_retry_after_when_the_database_is_gone(client, storage):
    await storage.close()  # the pool (or file connection) is gone: nothing answers
    response = await client.get("/healthz")
    await assert_error(response, 503, "ServiceUnavailable")
    assert response.headers["Retry-After"] == "1"
