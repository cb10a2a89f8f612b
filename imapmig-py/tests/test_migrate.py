"""imapmig from Python against real Dovecot servers."""

from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
import signal
import socket
import threading
import time

import pytest

import imapmig

SEEDED = 30


def pair(dovecot, messages=SEEDED, size=2000, **dest_args):
    """A source with `messages` in INBOX and 5 in Projects, and an empty destination."""
    src = dovecot("--seed", f"alice:INBOX:{messages}:{size}", "--seed", "alice:Projects:5")
    dst = dovecot("--user", "alice", *dest_args.get("args", ()))
    return src, dst


def test_account_never_shows_its_password():
    a = imapmig.Account("imap.example.com", user="alice", password="hunter2-secret")
    assert "hunter2-secret" not in repr(a)
    assert "***" in repr(a)
    assert not hasattr(a, "password")
    assert (a.host, a.port, a.user, a.tls, a.auth) == ("imap.example.com", 993, "alice", "tls", "auto")
    assert imapmig.Account("h", user="u", password="p", tls="starttls").port == 143


def test_bad_options_raise_config_error(tmp_path):
    with pytest.raises(imapmig.ConfigError) as e:
        imapmig.Account("h", user="u", password="p", tls="ssl")
    assert isinstance(e.value, ValueError) and isinstance(e.value, imapmig.ImapmigError)
    assert "tls" in str(e.value)
    a = imapmig.Account("h", user="u", password="p")
    with pytest.raises(imapmig.ConfigError, match="since"):
        imapmig.Migration(a, a, state=tmp_path / "s.sqlite", since="last tuesday")
    with pytest.raises(imapmig.ConfigError, match="state"):
        imapmig.Migration(a, a)
    with pytest.raises(imapmig.ConfigError, match="mode"):
        imapmig.Migration(a, a, dry_run=True, mode="sideways")
    with pytest.raises(TypeError):
        imapmig.Migration(a, a, dry_run=True, colour="blue")
    with pytest.raises(TypeError):
        imapmig.Migration(a, a, dry_run=True, since=20240101)


def test_check_describes_the_server(dovecot):
    src = dovecot("--user", "alice")
    r = imapmig.check(src.account("alice"))
    assert r["tls"] is True
    assert r["logged_in_as"] == "alice"
    assert "IMAP4REV1" in [c.upper() for c in r["capabilities"]]
    assert r["separator"] == "/"
    assert asyncio.run(imapmig.check_async(src.account("alice")))["folders"] == r["folders"]


def test_migration_reports_progress_and_copies_everything_once(dovecot, tmp_path):
    src, dst = pair(dovecot)
    source, destination = src.account("alice"), dst.account("alice")
    events = []
    threads = set()

    def progress(event):
        events.append(event)
        threads.add(threading.get_ident())

    report = imapmig.migrate(
        source, destination, state=tmp_path / "state.sqlite", progress=progress,
        progress_interval=0,
    )
    assert report["complete"] is True
    assert report["copied"] == SEEDED + 5
    assert dst.count("alice", "INBOX") == SEEDED
    assert dst.count("alice", "Projects") == 5

    types = [e["type"] for e in events]
    assert types[0] == "planned"
    assert {"folder_started", "progress", "folder_done"} <= set(types)
    progress_events = [e for e in events if e["type"] == "progress"]
    assert progress_events[-1]["total_copied"] == SEEDED + 5
    done = {e["source"]: e for e in events if e["type"] == "folder_done"}
    assert done["INBOX"]["copied"] == SEEDED
    # The callback runs on the calling thread.
    assert threads == {threading.get_ident()}

    # Again: nothing new to copy.
    again = imapmig.migrate(source, destination, state=tmp_path / "state.sqlite")
    assert again["copied"] == 0
    assert dst.count("alice", "INBOX") == SEEDED

    v = imapmig.verify(source, destination)
    assert v["identical"] is True
    assert all(f["extra_on_destination"] == 0 for f in v["folders"])


def test_progress_is_throttled(dovecot, tmp_path):
    src, dst = pair(dovecot, messages=200, size=500)
    events = []
    imapmig.migrate(
        src.account("alice"), dst.account("alice"), state=tmp_path / "s.sqlite",
        progress=events.append, progress_interval=3600,
    )
    progress = [e for e in events if e["type"] == "progress"]
    # One right away, one before each folder event at most: far fewer than 205 copies.
    assert 1 <= len(progress) <= 2 * len([e for e in events if e["type"] != "progress"])
    assert progress[-1]["total_copied"] == 205


def test_wrong_password_raises_authentication_error(dovecot, tmp_path):
    src, dst = pair(dovecot, messages=1)
    wrong = src.account("alice", password="not-the-password")
    with pytest.raises(imapmig.AuthenticationError) as e:
        imapmig.migrate(wrong, dst.account("alice"), state=tmp_path / "s.sqlite")
    err = e.value
    assert isinstance(err, imapmig.ImapmigError)
    assert err.kind == "authentication"
    assert err.side == "source"
    assert err.transient is False
    assert "not-the-password" not in str(err)
    assert "alice" in str(err)
    with pytest.raises(imapmig.AuthenticationError):
        imapmig.check(wrong)


def test_unreachable_server_raises_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port now.
    a = imapmig.Account("127.0.0.1", port=port, user="u", password="p", timeout=5)
    with pytest.raises(imapmig.ConnectionError) as e:
        imapmig.check(a)
    assert e.value.transient is True


def test_untrusted_certificate_raises_tls_error(dovecot):
    src = dovecot("--user", "alice")
    with pytest.raises(imapmig.TlsError):
        imapmig.check(src.account("alice", ca_file=None))


def test_cancel_stops_at_a_message_boundary_and_a_rerun_finishes(dovecot, tmp_path):
    total = 300
    src, dst = pair(dovecot, messages=total, size=1000)
    source, destination = src.account("alice"), dst.account("alice")
    state = tmp_path / "state.sqlite"
    m = imapmig.Migration(
        source, destination, state=state, batch=5, connections=1, include="INBOX"
    )

    def progress(event):
        if event["type"] == "progress":
            # From another thread, as a supervisor would.
            threading.Thread(target=m.cancel).start()

    with pytest.raises(imapmig.CancelledError) as e:
        m.run(progress, progress_interval=0)
    assert e.value.kind == "cancelled"
    assert not m.running
    copied = dst.count("alice", "INBOX")
    assert 0 < copied < total

    report = imapmig.Migration(
        source, destination, state=state, batch=5, connections=1, include="INBOX"
    ).run()
    assert report["complete"]
    assert report["copied"] == total - copied, "the re-run copies only what is missing"
    assert dst.count("alice", "INBOX") == total
    v = imapmig.verify(source, destination, include="INBOX")
    assert v["identical"] and v["folders"][0]["extra_on_destination"] == 0


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(dovecot, tmp_path):
    total = 300
    src, dst = pair(dovecot, messages=total, size=1000)
    source, destination = src.account("alice"), dst.account("alice")
    state = tmp_path / "state.sqlite"
    sent = []

    def progress(event):
        if event["type"] == "progress" and not sent:
            sent.append(True)
            # Like a user pressing Ctrl-C while the main thread waits in Rust.
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        imapmig.migrate(
            source, destination, state=state, batch=5, connections=1, include="INBOX",
            progress=progress, progress_interval=0,
        )
    assert time.monotonic() - started < 30
    copied = dst.count("alice", "INBOX")
    assert 0 < copied < total

    report = imapmig.migrate(
        source, destination, state=state, batch=5, connections=1, include="INBOX"
    )
    assert report["copied"] == total - copied
    assert dst.count("alice", "INBOX") == total


def test_an_exception_in_the_callback_stops_the_migration(dovecot, tmp_path):
    src, dst = pair(dovecot, messages=200, size=500)

    class Stop(Exception):
        pass

    def progress(event):
        if event["type"] == "progress":
            raise Stop()

    with pytest.raises(Stop):
        imapmig.migrate(
            src.account("alice"), dst.account("alice"), state=tmp_path / "s.sqlite",
            batch=5, connections=1, progress=progress, progress_interval=0,
        )
    assert dst.count("alice", "INBOX") < 200


def test_the_gil_is_released_while_migrating(dovecot, tmp_path):
    src, dst = pair(dovecot, messages=200, size=2000)
    ticks = 0
    done = threading.Event()

    def ticker():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        imapmig.migrate(src.account("alice"), dst.account("alice"), state=tmp_path / "s.sqlite")
    finally:
        done.set()
        t.join()
    assert ticks > 10


def test_async_migration_and_task_cancellation(dovecot, tmp_path):
    total = 300
    src, dst = pair(dovecot, messages=total, size=1000)
    source, destination = src.account("alice"), dst.account("alice")
    state = tmp_path / "state.sqlite"
    loop_threads = set()

    async def main():
        first_progress = asyncio.Event()

        def progress(event):
            loop_threads.add(threading.get_ident())
            if event["type"] == "progress":
                first_progress.set()

        m = imapmig.Migration(source, destination, state=state, batch=5, connections=1,
                              include="INBOX")
        task = asyncio.ensure_future(m.run_async(progress, progress_interval=0))
        await asyncio.wait_for(first_progress.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not m.running, "the run has stopped when the cancellation is delivered"
        copied = dst.count("alice", "INBOX")
        assert 0 < copied < total

        report = await imapmig.migrate_async(
            source, destination, state=state, batch=5, connections=1, include="INBOX"
        )
        assert report["copied"] == total - copied
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert loop_threads == {loop_thread}, "async callbacks run on the event loop"
    assert dst.count("alice", "INBOX") == total


def test_analyze_and_verify(dovecot, tmp_path):
    src, dst = pair(dovecot, messages=10, size=3000)
    source, destination = src.account("alice"), dst.account("alice")
    a = imapmig.analyze(source, max_size=100_000)
    folders = {f["name"]: f for f in a["folders"]}
    assert folders["INBOX"]["messages"] == 10
    assert folders["Projects"]["messages"] == 5
    assert a["messages"] == 15 and a["plan"] is None
    planned = asyncio.run(imapmig.analyze_async(source, destination, exclude="Projects"))
    assert "INBOX" in planned["plan"]

    before = imapmig.verify(source, destination)
    assert before["identical"] is False
    imapmig.migrate(source, destination, state=tmp_path / "s.sqlite",
                    since=datetime.date(2000, 1, 1))
    after = asyncio.run(imapmig.verify_async(source, destination))
    assert after["identical"] is True


def test_refusals_are_reported_not_raised(dovecot, tmp_path):
    src = dovecot("--seed", "alice:INBOX:20:20000")
    dst = dovecot("--quota", "alice=100")
    report = imapmig.migrate(src.account("alice"), dst.account("alice"),
                             state=tmp_path / "s.sqlite")
    assert report["complete"] is False
    refused = [m for f in report["folders"] for m in f["refused"]]
    assert refused and all("OVERQUOTA" in m["reason"].upper() for m in refused)


def test_the_wheel_ships_stubs_and_py_typed():
    package = pathlib.Path(imapmig.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_imapmig.pyi").exists()
    assert imapmig.__version__
    assert imapmig.migrate.__doc__ and imapmig.Account.__doc__


def test_local_stores_as_source_and_destination(dovecot, tmp_path):
    """An mbox archive into a Maildir, then that Maildir onto a server: the sources the CLI
    always read, through the same configuration model."""
    archive = tmp_path / "archive.mbox"
    archive.write_text(
        "".join(
            f"From a@x Mon Jan  1 00:00:0{i} 2024\nFrom: a@x\nSubject: {i}\n\nbody {i}\n\n"
            for i in range(4)
        )
    )
    backup = imapmig.Maildir(tmp_path / "backup")
    report = imapmig.migrate(imapmig.Mbox(archive), backup, state=tmp_path / "a.sqlite")
    assert report["complete"] is True and report["copied"] == 4
    dst = dovecot("--user", "alice")
    report = imapmig.migrate(backup, dst.account("alice"), state=tmp_path / "b.sqlite")
    assert report["complete"] is True and report["copied"] == 4
    again = imapmig.migrate(backup, dst.account("alice"), state=tmp_path / "b.sqlite")
    assert again["copied"] == 0
