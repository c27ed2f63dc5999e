"""Against the real server: a body over the limit gets its 413 even from a client still sending
(Python's urllib), and a body that stalls is cut short with a 408, not held open."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest

from e2e.conftest import Server

pytestmark = pytest.mark.e2e


def test_a_client_still_sending_an_oversized_body_reads_the_413(server: Server) -> None:
    body = b'{"batch": [' + b" " * (6 * 1024 * 1024) + b"]}"
    request = urllib.request.Request(
        f"{server.base}/v1/events", data=body, method="POST",
        headers={"Authorization": f"Bearer {server.settings.secret_key}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["error"]["code"] == "batch_too_large"


def test_a_body_that_stalls_is_cut_short_with_408(server: Server) -> None:
    url = urlparse(server.base)
    with socket.create_connection((url.hostname, url.port), timeout=15) as sock:
        head = (
            "POST /v1/events HTTP/1.1\r\n"
            f"Host: {url.hostname}\r\n"
            f"Authorization: Bearer {server.settings.secret_key}\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
            '{"batch": ['
        )
        started = time.monotonic()
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < 10  # the server's CAIRN_BODY_TIMEOUT_S is 2 here
