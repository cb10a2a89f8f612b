"""Batch tasks from Python against real Dovecot servers: create, import, run, status,
pause/resume, credentials, audit."""

from __future__ import annotations

import json

import pytest

import imapmig


def server(s, **extra):
    settings = {
        "host": s.info["host"],
        "port": s.info["imaps_port"],
        "certificate": {"cafile": s.info["ca_file"]},
        "timeout": 30,
    }
    settings.update(extra)
    return settings


@pytest.fixture
def task_setup(dovecot, tmp_path):
    src = dovecot("--seed", "ann:INBOX:20", "--seed", "bob:INBOX:10")
    dst = dovecot("--user", "ann@x.example", "--user", "bob@x.example")
    master = dst.info["master"]
    settings = {
        "source": server(src),
        "destination": server(
            dst, auth={"kind": "master_user", "master": master["name"], "separator": "*"}
        ),
    }
    state = tmp_path / "tasks.sqlite"
    task = imapmig.BatchTask.create(
        state, "wave1", settings, destination_secret=master["password"]
    )
    # bob has no password yet: he waits for credentials.
    csv = tmp_path / "accounts.csv"
    csv.write_text(
        "target,source,password\n"
        f"ann@x.example,ann,{src.users['ann']}\n"
        "bob@x.example,bob,\n"
    )
    return src, dst, state, task, csv, settings


def test_create_import_run_and_status(task_setup, tmp_path):
    src, dst, state, task, csv, settings = task_setup
    assert imapmig.BatchTask.names(state) == ["wave1"]
    assert task.settings()["source"]["host"] == settings["source"]["host"]

    r = task.import_accounts(csv)
    assert (r["added"], r["waiting_for_credentials"]) == (2, 1)

    by_target = {a["target"]: a for a in task.status()}
    assert by_target["bob@x.example"]["status"] == "waiting_for_credentials"
    assert by_target["bob@x.example"]["has_credentials"] is False

    snapshots = []
    # However quickly a run ends, its last snapshot goes out before it does.
    summary = task.run(until_idle=True, progress=snapshots.append, progress_interval=3600)
    assert summary["passes_synced"] == 1
    assert dst.count("ann@x.example") == 20
    assert snapshots, "live snapshots were delivered"
    assert snapshots[-1]["copied"] == 20, snapshots[-1]

    # The hook a platform calls when bob logs in with his old password.
    changed = task.supply_credentials("bob@x.example", src.users["bob"])
    assert changed[0]["status"] in ("scheduled", "not_started")
    task.run(until_idle=True)
    assert dst.count("bob@x.example") == 10

    summary = imapmig.BatchTask.open(state, "wave1").summary()
    assert summary["statuses"].get("synced") == 2
    assert summary["messages"] == 30

    # Nothing the store hands out holds a secret.
    exported = json.dumps([task.status(), task.audit(), task.settings()])
    for secret in (src.users["ann"], src.users["bob"], dst.info["master"]["password"]):
        assert secret not in exported
    events = {e["event"] for e in task.audit()}
    assert "task_created" in events


def test_pause_resume_stop(task_setup):
    src, dst, state, task, csv, settings = task_setup
    task.import_accounts(csv)
    r = task.pause(["ann@x.example"])
    assert r["changed"] == 1
    assert task.status("ann@x.example")[0]["status"] == "paused"
    # A paused account does not run.
    task.run(until_idle=True)
    assert dst.count("ann@x.example") == 0
    assert task.resume()["changed"] >= 1
    assert task.status("ann@x.example")[0]["status"] != "paused"
    task.run(until_idle=True)
    assert dst.count("ann@x.example") == 20
    assert task.stop("ann@x.example")["changed"] == 1
    assert task.status("ann@x.example")[0]["status"] == "stopped"


def test_cancel_ends_a_run_with_its_summary(task_setup):
    src, dst, state, task, csv, settings = task_setup
    task.import_accounts(csv)

    def progress(snapshot):
        task.cancel()

    summary = task.run(progress=progress, progress_interval=0.2)
    assert "passes" in summary
    assert not task.running


def test_batch_errors(task_setup, tmp_path):
    src, dst, state, task, csv, settings = task_setup
    with pytest.raises(imapmig.BatchError) as e:
        imapmig.BatchTask.create(state, "wave1", settings, destination_secret="x")
    assert e.value.kind == "task_exists"
    with pytest.raises(imapmig.BatchError) as e:
        imapmig.BatchTask.open(state, "nope")
    assert e.value.kind == "unknown_task"
    bad = tmp_path / "bad.csv"
    bad.write_text("target,source,password\nnot an address,ann,x\n")
    with pytest.raises(imapmig.BatchError) as e:
        task.import_accounts(bad)
    assert e.value.kind == "csv" and "line 2" in str(e.value)
    with pytest.raises(imapmig.BatchError) as e:
        task.pause(["nobody@x.example"])
    assert e.value.kind == "unknown_account"
    with pytest.raises(imapmig.ConfigError):
        imapmig.BatchTask.create(state, "wave2", {"source": {"host": "h"}})


def test_an_edit_changes_only_what_it_gives(tmp_path):
    task = imapmig.BatchTask.create(
        tmp_path / "t.sqlite", "t",
        {"source": {"host": "old.example", "port": 993},
         "destination": {"host": "new.example", "port": 993}},
    )
    changed = task.edit({"source": {"transport": "starttls"}, "limits": {"accounts": 5}})
    assert changed
    s = task.settings()
    assert (s["source"]["transport"], s["source"]["port"]) == ("starttls", 143)
    assert s["limits"]["accounts"] == 5 and s["destination"]["host"] == "new.example"
    with pytest.raises(imapmig.ConfigError, match="since"):
        task.edit({"messages": {"since": "2024-01-01", "before": "2023-01-01"}})
