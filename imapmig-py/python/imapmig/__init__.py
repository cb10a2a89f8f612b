"""imapmig: move whole mailboxes between IMAP servers, exactly once, resumable after a crash.

A thin Python face over the imapmig Rust library::

    import imapmig

    old = imapmig.Account("imap.old.example", user="alice", password="...")
    new = imapmig.Account("imap.new.example", user="alice@new.example", password="...")

    imapmig.check(old)                              # connect, log in, list folders
    print(imapmig.analyze(old, new)["plan"])        # what goes where, before copying
    report = imapmig.migrate(old, new, state="alice.sqlite", progress=print)
    assert imapmig.verify(old, new)["identical"]

A source may also be a POP3 server (``Account(..., protocol="pop3")``: the inbox only,
nothing deleted), a Maildir++ tree (:class:`Maildir`) or an mbox archive (:class:`Mbox`, a
file or a directory of them); a destination may be a :class:`Maildir` (created if missing)::

    imapmig.migrate(imapmig.Mbox("archive.mbox"), new, state="alice.sqlite")
    imapmig.migrate(old, imapmig.Maildir("backup/alice"), state="backup.sqlite")

Every call that waits releases the GIL. The blocking forms stop cleanly on Ctrl-C (a
migration stops at the next message boundary, its state intact, and raises
``KeyboardInterrupt``; running it again resumes it). Each has an ``..._async`` twin to await
from asyncio. Results are plain dicts (see :mod:`imapmig.types`), errors are subclasses of
:class:`ImapmigError` (see :mod:`imapmig.errors`).

Folder and message options, shared by :func:`analyze`, :func:`verify`, :func:`migrate` and
:class:`Migration`:

* ``mode``: ``"mapping"`` (default: system folders onto the destination's own, the rest keeps
  its tree) or ``"unified"`` (everything under ``unified_root/unified_address/``);
* ``unified_root`` (default ``"Migrated"``), ``unified_address`` (default: the source user);
* ``include``, ``exclude``: globs over source folder names with ``/`` between levels
  (``"Work/**"``, ``"Archive{,/**}"``);
* ``exclude_special``: special uses not to copy (``"trash"``, ``"junk"``, ...);
* ``renames``: ``{"Old Name": "New/Name"}``, applied first, in order;
* ``include_virtual``: also copy views such as Gmail's All Mail (duplicates mail);
* ``since``, ``before``: a :class:`datetime.date` or ``"YYYY-MM-DD"``; ``date_field``:
  ``"internal"`` (INTERNALDATE, default) or ``"header"`` (the Date: header);
* ``max_size``: skip (and report) larger messages, in bytes.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

from . import _imapmig
from ._imapmig import Account, __version__
from .errors import (
    AuthenticationError,
    BatchError,
    CancelledError,
    ConfigError,
    ConnectionError,
    ImapmigError,
    PlanError,
    QuotaError,
    ServerError,
    StateError,
    StorageError,
    TlsError,
)
from .types import (
    AccountStatus,
    Analysis,
    CheckResult,
    ControlReport,
    ImportReport,
    LiveSnapshot,
    MigrationReport,
    ProgressEvent,
    RunSummary,
    TaskSummary,
    Verification,
)

__all__ = [
    "__version__",
    "Account",
    "Maildir",
    "Mbox",
    "Migration",
    "BatchTask",
    "check",
    "check_async",
    "analyze",
    "analyze_async",
    "verify",
    "verify_async",
    "migrate",
    "migrate_async",
    "ImapmigError",
    "ConfigError",
    "AuthenticationError",
    "ConnectionError",
    "TlsError",
    "QuotaError",
    "ServerError",
    "StorageError",
    "PlanError",
    "StateError",
    "CancelledError",
    "BatchError",
    "ProgressEvent",
]

#: A progress callback: receives each event as a dict (see :data:`imapmig.types.ProgressEvent`).
ProgressCallback = Callable[[ProgressEvent], Any]
DateLike = Union[datetime.date, str]
PathLike = Union[str, "os.PathLike[str]"]


class Maildir:
    """A Maildir++ tree (as Dovecot lays it out): a source, or a destination created when
    missing."""

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)

    def _side(self) -> str:
        return json.dumps({"kind": "maildir", "path": self.path})

    def __repr__(self) -> str:
        return f"imapmig.Maildir({self.path!r})"


class Mbox:
    """An mbox file, or a directory of them (one folder per file): a source. ``flavor`` says
    how ``From `` lines are escaped: ``"mboxrd"`` (default: mutt, Python, Dovecot),
    ``"mboxo"`` (Thunderbird) or ``"mboxcl2"`` (Content-Length, Solaris)."""

    def __init__(self, path: PathLike, *, flavor: str = "mboxrd") -> None:
        self.path = os.fspath(path)
        self.flavor = flavor

    def _side(self) -> str:
        return json.dumps({"kind": "mbox", "path": self.path, "flavor": self.flavor})

    def __repr__(self) -> str:
        return f"imapmig.Mbox({self.path!r}, flavor={self.flavor!r})"


#: Where mail comes from: a server (IMAP or POP3), a Maildir or an mbox archive.
Source = Union[Account, Maildir, Mbox]
#: Where mail goes: an IMAP server or a Maildir.
Destination = Union[Account, Maildir]


def _side(side: Any) -> Any:
    """What the native layer takes for a side: the Account itself, or a local store's JSON."""
    return side._side() if isinstance(side, (Maildir, Mbox)) else side


def _day(name: str, value: Optional[DateLike]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(
        f"{name} must be a datetime.date or a 'YYYY-MM-DD' string, not {type(value).__name__}"
    )


def _strings(value: Union[str, Iterable[str], None]) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def _folder_options(
    mode: str,
    unified_root: Optional[str],
    unified_address: Optional[str],
    include: Union[str, Iterable[str], None],
    exclude: Union[str, Iterable[str], None],
    exclude_special: Union[str, Iterable[str], None],
    renames: Optional[Mapping[str, str]],
    include_virtual: bool,
    since: Optional[DateLike],
    before: Optional[DateLike],
    date_field: str,
    max_size: Optional[int],
) -> Dict[str, Any]:
    return {
        "mode": mode,
        "unified_root": unified_root,
        "unified_address": unified_address,
        "include": _strings(include),
        "exclude": _strings(exclude),
        "exclude_special": _strings(exclude_special),
        "renames": None if renames is None else list(renames.items()),
        "include_virtual": include_virtual,
        "since": _day("since", since),
        "before": _day("before", before),
        "date_field": date_field,
        "max_size": max_size,
    }


def check(account: Account) -> CheckResult:
    """Connects to the server, logs in and lists folders: a quick test of the host, port,
    TLS and password before anything else.

    Raises:
        AuthenticationError, ConnectionError, TlsError, ServerError.
    """
    return _imapmig.check(account)


async def check_async(account: Account) -> CheckResult:
    """:func:`check`, awaitable."""
    return await _imapmig.check_async(account)


def analyze(
    source: Source,
    destination: Optional[Destination] = None,
    *,
    mode: str = "mapping",
    unified_root: Optional[str] = None,
    unified_address: Optional[str] = None,
    include: Union[str, Iterable[str], None] = None,
    exclude: Union[str, Iterable[str], None] = None,
    exclude_special: Union[str, Iterable[str], None] = None,
    renames: Optional[Mapping[str, str]] = None,
    include_virtual: bool = False,
    since: Optional[DateLike] = None,
    before: Optional[DateLike] = None,
    date_field: str = "internal",
    max_size: Optional[int] = None,
) -> Analysis:
    """Looks at the source before a migration: folders, message counts and sizes, how many
    exceed ``max_size``, an estimate of the copy time from reading a sample, and (when a
    destination is given) the folder plan. Copies nothing. Options as in the module
    documentation."""
    return _imapmig.analyze(
        _side(source),
        None if destination is None else _side(destination),
        _folder_options(
            mode, unified_root, unified_address, include, exclude, exclude_special,
            renames, include_virtual, since, before, date_field, max_size,
        ),
    )


async def analyze_async(
    source: Source,
    destination: Optional[Destination] = None,
    *,
    mode: str = "mapping",
    unified_root: Optional[str] = None,
    unified_address: Optional[str] = None,
    include: Union[str, Iterable[str], None] = None,
    exclude: Union[str, Iterable[str], None] = None,
    exclude_special: Union[str, Iterable[str], None] = None,
    renames: Optional[Mapping[str, str]] = None,
    include_virtual: bool = False,
    since: Optional[DateLike] = None,
    before: Optional[DateLike] = None,
    date_field: str = "internal",
    max_size: Optional[int] = None,
) -> Analysis:
    """:func:`analyze`, awaitable."""
    return await _imapmig.analyze_async(
        _side(source),
        None if destination is None else _side(destination),
        _folder_options(
            mode, unified_root, unified_address, include, exclude, exclude_special,
            renames, include_virtual, since, before, date_field, max_size,
        ),
    )


def verify(
    source: Source,
    destination: Destination,
    *,
    mode: str = "mapping",
    unified_root: Optional[str] = None,
    unified_address: Optional[str] = None,
    include: Union[str, Iterable[str], None] = None,
    exclude: Union[str, Iterable[str], None] = None,
    exclude_special: Union[str, Iterable[str], None] = None,
    renames: Optional[Mapping[str, str]] = None,
    include_virtual: bool = False,
    since: Optional[DateLike] = None,
    before: Optional[DateLike] = None,
    date_field: str = "internal",
    max_size: Optional[int] = None,
) -> Verification:
    """Compares source and destination message by message (content, flags, INTERNALDATE),
    reading both afresh: never trusting the migration's own records. Pass the options the
    migration used. ``result["identical"]`` says whether everything is there."""
    return _imapmig.verify(
        _side(source),
        _side(destination),
        _folder_options(
            mode, unified_root, unified_address, include, exclude, exclude_special,
            renames, include_virtual, since, before, date_field, max_size,
        ),
    )


async def verify_async(
    source: Source,
    destination: Destination,
    *,
    mode: str = "mapping",
    unified_root: Optional[str] = None,
    unified_address: Optional[str] = None,
    include: Union[str, Iterable[str], None] = None,
    exclude: Union[str, Iterable[str], None] = None,
    exclude_special: Union[str, Iterable[str], None] = None,
    renames: Optional[Mapping[str, str]] = None,
    include_virtual: bool = False,
    since: Optional[DateLike] = None,
    before: Optional[DateLike] = None,
    date_field: str = "internal",
    max_size: Optional[int] = None,
) -> Verification:
    """:func:`verify`, awaitable."""
    return await _imapmig.verify_async(
        _side(source),
        _side(destination),
        _folder_options(
            mode, unified_root, unified_address, include, exclude, exclude_special,
            renames, include_virtual, since, before, date_field, max_size,
        ),
    )


class Migration:
    """One account's migration, set up once and run as often as needed: each run copies only
    what is not on the destination yet (after a crash, a cancel, or to pick up new mail).

    ``state`` is the sync-state file (SQLite, created if missing): what makes a re-run resume
    instead of copying everything again. It may be left out only with ``dry_run=True``.
    ``account_key`` names this pair in the file (default: the CLI's key, so the CLI and Python
    resume each other's runs). ``connections`` folders are copied in parallel, ``batch``
    messages per pipelined batch; a folder is retried ``retries`` times after a transient
    failure, waiting ``backoff`` seconds (doubling); left out, each takes the library's default
    (2 connections, batches of 64, 5 retries, 0.5 s). Folder and message options as in the
    module documentation.

    The state file is opened (and the options checked) here; nothing connects until
    :meth:`run`.
    """

    def __init__(
        self,
        source: Source,
        destination: Destination,
        *,
        state: Optional[PathLike] = None,
        account_key: Optional[str] = None,
        connections: Optional[int] = None,
        batch: Optional[int] = None,
        dry_run: bool = False,
        retries: Optional[int] = None,
        backoff: Optional[float] = None,
        mode: str = "mapping",
        unified_root: Optional[str] = None,
        unified_address: Optional[str] = None,
        include: Union[str, Iterable[str], None] = None,
        exclude: Union[str, Iterable[str], None] = None,
        exclude_special: Union[str, Iterable[str], None] = None,
        renames: Optional[Mapping[str, str]] = None,
        include_virtual: bool = False,
        since: Optional[DateLike] = None,
        before: Optional[DateLike] = None,
        date_field: str = "internal",
        max_size: Optional[int] = None,
    ) -> None:
        options = _folder_options(
            mode, unified_root, unified_address, include, exclude, exclude_special,
            renames, include_virtual, since, before, date_field, max_size,
        )
        options.update(
            state=None if state is None else os.fspath(state),
            account_key=account_key,
            connections=connections,
            batch=batch,
            dry_run=dry_run,
            retries=retries,
            backoff=backoff,
        )
        self._native = _imapmig.Migration(_side(source), _side(destination), options)

    def run(
        self,
        progress: Optional[ProgressCallback] = None,
        *,
        progress_interval: float = 0.1,
    ) -> MigrationReport:
        """Runs the migration to the end and returns its report.

        Blocks with the GIL released. ``progress`` is called on this thread with each event
        (a dict, see :data:`imapmig.types.ProgressEvent`); per-message progress comes at most
        every ``progress_interval`` seconds (0: every message), folder events always.

        Ctrl-C (``KeyboardInterrupt``), or an exception raised by ``progress``, stops the
        migration at the next message boundary; once it has stopped, that exception is
        raised. :meth:`cancel` (from any thread) ends the run with :class:`CancelledError`.
        Either way everything copied so far is recorded: run again to resume.
        """
        return self._native.run(progress, progress_interval)

    async def run_async(
        self,
        progress: Optional[ProgressCallback] = None,
        *,
        progress_interval: float = 0.1,
    ) -> MigrationReport:
        """:meth:`run`, awaitable. ``progress`` is called on the event loop's thread.

        Cancelling the awaiting task stops the migration at the next message boundary; the
        ``asyncio.CancelledError`` is raised once it has stopped, so the state is settled
        when the caller goes on.
        """
        try:
            return await self._native.run_async(progress, progress_interval)
        except asyncio.CancelledError:
            self._native.cancel()
            await self._native.stopped_async()
            raise

    def cancel(self) -> None:
        """Asks the run under way to stop at the next message boundary and returns at once.
        Safe from any thread (a signal handler, another task, the progress callback)."""
        self._native.cancel()

    @property
    def running(self) -> bool:
        """Whether a run is under way."""
        return self._native.running

    def __repr__(self) -> str:
        return f"<imapmig.Migration running={self.running}>"


def migrate(
    source: Source,
    destination: Destination,
    *,
    state: Optional[PathLike] = None,
    progress: Optional[ProgressCallback] = None,
    progress_interval: float = 0.1,
    **options: Any,
) -> MigrationReport:
    """Migrates one account: ``Migration(source, destination, state=state,
    **options).run(progress, progress_interval=progress_interval)``. See :class:`Migration`
    for the options and :meth:`Migration.run` for progress, Ctrl-C and errors."""
    return Migration(source, destination, state=state, **options).run(
        progress, progress_interval=progress_interval
    )


async def migrate_async(
    source: Source,
    destination: Destination,
    *,
    state: Optional[PathLike] = None,
    progress: Optional[ProgressCallback] = None,
    progress_interval: float = 0.1,
    **options: Any,
) -> MigrationReport:
    """:func:`migrate`, awaitable (see :meth:`Migration.run_async`)."""
    return await Migration(source, destination, state=state, **options).run_async(
        progress, progress_interval=progress_interval
    )


Accounts = Union[str, Iterable[str], None]


def _names(accounts: Accounts) -> Optional[List[str]]:
    return _strings(accounts)


class BatchTask:
    """A migration task with many accounts, kept in a state file (SQLite) beside the sync
    state: settings, accounts imported from CSV, each account's status, an audit log.
    Several processes may open the same task; one at a time runs it.

    ``settings`` is a dict in the library's task-settings form, for example::

        {
            "source": {"host": "imap.old.example", "port": 993},
            "destination": {
                "host": "imap.new.example", "port": 993,
                "auth": {"kind": "master_user", "master": "admin", "separator": "*"},
            },
            "folders": {"exclude_special": ["junk"]},
            "messages": {"since": "2019-01-01"},
            "schedule": {"window": 2592000, "interval": 3600},   # seconds
            "limits": {"accounts": 20, "per_source_host": 20, "per_destination_host": 40,
                       "connections_per_account": 2},
        }

    A server is ``{"host", "port", "transport": "tls"|"starttls"|"cleartext",
    "certificate": "system"|"insecure"|{"cafile": path}, "timeout": seconds, "auth": ...}``;
    ``auth`` is ``{"kind": "password", "mechanism": "auto"|"login"|"plain"}`` (each account's
    own password, the default), ``{"kind": "o_auth2", "mechanism": "xoauth2"|"oauthbearer"}``,
    ``{"kind": "admin", "user": ...}`` or ``{"kind": "master_user", "master": ...,
    "separator": "*"}``; the admin's or master's password is ``source_secret`` /
    ``destination_secret``. :meth:`settings` returns the full form with every default.

    Accounts are named by target address, source login or ``"#id"``; ``accounts=None`` means
    every account of the task.
    """

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def create(
        cls,
        state: PathLike,
        name: str,
        settings: Mapping[str, Any],
        *,
        source_secret: Optional[str] = None,
        destination_secret: Optional[str] = None,
    ) -> "BatchTask":
        """Creates task ``name`` in the state file (created if missing).

        Raises:
            ConfigError: the settings cannot work (the message names the setting).
            BatchError: ``kind == "task_exists"``.
        """
        return cls(
            _imapmig.BatchTask.create(
                os.fspath(state), name, json.dumps(settings), source_secret, destination_secret
            )
        )

    @classmethod
    def open(cls, state: PathLike, name: str = "default") -> "BatchTask":
        """Opens an existing task (``BatchError`` with ``kind == "unknown_task"`` if none)."""
        return cls(_imapmig.BatchTask.open(os.fspath(state), name))

    @staticmethod
    def names(state: PathLike) -> List[str]:
        """The tasks in a state file."""
        return _imapmig.BatchTask.names(os.fspath(state))

    @property
    def name(self) -> str:
        return self._native.name

    def settings(self) -> Dict[str, Any]:
        """The task's settings, every default filled in (never its secrets)."""
        return self._native.settings()

    def edit(
        self,
        settings: Mapping[str, Any],
        *,
        source_secret: Optional[str] = None,
        destination_secret: Optional[str] = None,
        apply_to: str = "not_started",
    ) -> List[str]:
        """Edits the settings: ``settings`` has the form of :meth:`settings` with every field
        optional, and only what it gives changes (``{"limits": {"accounts": 5}}``; the full
        form works too). A server's port follows a change of ``transport`` or ``protocol``
        unless given; ``"mechanism"`` and ``"admin"`` in a server adjust its login without
        restating it; ``None`` clears ``since``, ``before``, ``max_size`` and ``start_at``;
        durations are seconds or text like ``"6h"``. Returns the names of the settings that
        changed. A server change applies to accounts that have not started
        (``apply_to="not_started"``) or to all from their next pass (``"all"``)."""
        return self._native.edit(
            json.dumps(settings), source_secret, destination_secret, apply_to
        )

    def import_accounts(
        self, path: PathLike, *, skip_bad_rows: bool = False, update_existing: bool = False
    ) -> ImportReport:
        """Imports accounts from a CSV file: ``target,source,password[,target_password]``
        (header optional) or Microsoft 365's ``EmailAddress,UserName,Password``. Every row is
        checked first; while any is bad nothing is imported (``BatchError`` with
        ``kind == "csv"`` naming each bad line) unless ``skip_bad_rows``. An empty password
        makes the account wait for :meth:`supply_credentials`."""
        return self._native.import_accounts(os.fspath(path), skip_bad_rows, update_existing)

    def status(self, accounts: Accounts = None) -> List[AccountStatus]:
        """Every account (or the named ones): status, progress, last error."""
        return self._native.status(_names(accounts))

    def summary(self) -> TaskSummary:
        """Totals: accounts per status and failure category, messages, bytes."""
        return self._native.summary()

    def pause(self, accounts: Accounts = None) -> ControlReport:
        """Pauses accounts; a running pass stops at the next message boundary."""
        return self._native.pause(_names(accounts))

    def resume(self, accounts: Accounts = None) -> ControlReport:
        """Resumes paused, failed or stopped accounts."""
        return self._native.resume(_names(accounts))

    def stop(self, accounts: Accounts = None) -> ControlReport:
        """Stops accounts: no further passes until resumed."""
        return self._native.stop(_names(accounts))

    def supply_credentials(self, account: str, password: str) -> List[Dict[str, Any]]:
        """Supplies an account's source password or token (say, when its user logs in with
        the old password); a waiting or failed account starts. Returns ``[{"id",
        "status"}]``."""
        return self._native.supply_credentials(account, password)

    def audit(self, *, after: Optional[int] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """The audit log, oldest first: records after id ``after``, at most ``limit``."""
        return self._native.audit(after, limit)

    def run(
        self,
        *,
        until_idle: bool = False,
        progress: Optional[Callable[[LiveSnapshot], Any]] = None,
        progress_interval: float = 1.0,
    ) -> RunSummary:
        """Runs the task: migrates accounts within the limits, retries transient failures,
        runs incremental passes until each account's window closes. Blocks with the GIL
        released until :meth:`cancel` (returns the summary) or, with ``until_idle``, until
        nothing is running, due or scheduled. ``progress`` gets a live snapshot every
        ``progress_interval`` seconds, on this thread.

        Ctrl-C or an exception from ``progress`` stops every pass at the next message
        boundary (they run again on the next :meth:`run`), then is raised.

        Raises:
            BatchError: ``kind == "locked"`` when another process runs the task.
        """
        return self._native.run(until_idle, progress, progress_interval)

    async def run_async(
        self,
        *,
        until_idle: bool = False,
        progress: Optional[Callable[[LiveSnapshot], Any]] = None,
        progress_interval: float = 1.0,
    ) -> RunSummary:
        """:meth:`run`, awaitable; ``progress`` is called on the event loop. Cancelling the
        awaiting task stops the passes at the next message boundary."""
        return await self._native.run_async(until_idle, progress, progress_interval)

    def cancel(self) -> None:
        """Stops this object's run (any thread): passes end at the next message boundary and
        :meth:`run` returns the summary."""
        self._native.cancel()

    @property
    def running(self) -> bool:
        """Whether this object is running the task."""
        return self._native.running

    def __repr__(self) -> str:
        return f"<imapmig.BatchTask {self.name!r}>"
