"""Real Dovecot servers for the tests, started through imapmig-test-dovecot (the Rust
testkit's helper binary): one private instance per test, on free loopback ports, stopped when
the test ends (or when this process dies: the helper watches its stdin)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from typing import Any, Dict, Iterator, List

import pytest

import imapmig

REPO = pathlib.Path(__file__).resolve().parents[2]


def helper_binary() -> str:
    explicit = os.environ.get("IMAPMIG_TEST_DOVECOT")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "imapmig-test-dovecot"
        if candidate.exists():
            return str(candidate)
    pytest.fail(
        "imapmig-test-dovecot not found: build it with "
        "`cargo build -p imapmig-testkit --bin imapmig-test-dovecot` "
        "or point IMAPMIG_TEST_DOVECOT at it"
    )


class Server:
    """One running Dovecot and its users."""

    def __init__(self, args: List[str]) -> None:
        self.proc = subprocess.Popen(
            [helper_binary(), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"imapmig-test-dovecot {args} did not start")
        self.info: Dict[str, Any] = json.loads(line)
        self.users: Dict[str, str] = dict(self.info["users"])

    def command(self, line: str) -> Dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"{line!r}: {answer['error']}")
        return answer

    def user(self, name: str) -> str:
        password = self.command(f"user {name}")["password"]
        self.users[name] = password
        return password

    def seed(self, user: str, folder: str, count: int, size: int = 2000) -> None:
        self.command(f"seed {user} {folder} {count} {size}")
        if user not in self.users:
            self.user(user)

    def count(self, user: str, folder: str = "INBOX") -> int:
        return int(self.command(f"count {user} {folder}")["messages"])

    def account(self, user: str, **overrides: Any) -> imapmig.Account:
        """The user's account over implicit TLS, trusting the test CA."""
        options: Dict[str, Any] = {
            "port": self.info["imaps_port"],
            "user": user,
            "password": self.users.get(user) or self.user(user),
            "ca_file": self.info["ca_file"],
            "timeout": 30,
        }
        options.update(overrides)
        return imapmig.Account(self.info["host"], **options)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()


@pytest.fixture
def dovecot() -> Iterator:
    """A factory: ``dovecot("--seed", "alice:INBOX:10")`` starts a server."""
    servers: List[Server] = []

    def start(*args: str) -> Server:
        server = Server(list(args))
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()
