"""The shapes of imapmig's results and progress events.

Results are plain dicts (the same JSON as the CLI's ``--json`` output and the C API); these
TypedDicts describe them for type checkers and editors. Newer versions may add keys.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Tuple, TypedDict, Union

__all__ = [
    "CheckResult",
    "FolderAnalysis",
    "Analysis",
    "SkippedMessage",
    "FolderReport",
    "MigrationReport",
    "FolderVerification",
    "Verification",
    "PlannedEvent",
    "FolderStartedEvent",
    "ProgressUpdate",
    "MessageSkippedEvent",
    "RetryingEvent",
    "FolderDoneEvent",
    "ProgressEvent",
    "ImportReport",
    "AccountStatus",
    "TaskSummary",
    "ControlReport",
    "HostUsage",
    "RunningAccount",
    "LiveSnapshot",
    "RunSummary",
]


class CheckResult(TypedDict):
    """What :func:`imapmig.check` found out about a server."""

    host: str
    port: int
    tls: bool
    greeting: str
    logged_in_as: str
    capabilities: List[str]
    folders: int
    namespace_prefix: str
    separator: Optional[str]
    seconds: float


class FolderAnalysis(TypedDict):
    name: str
    special_use: Optional[str]
    messages: int
    bytes: int
    largest: int
    #: With a date range: the messages in it (else None).
    in_date_range: Optional[int]


class Analysis(TypedDict):
    """What :func:`imapmig.analyze` found on the source."""

    folders: List[FolderAnalysis]
    messages: int
    bytes: int
    over_size_limit: int
    #: With a date range: the messages in it and their bytes (else None).
    in_date_range: Optional[int]
    in_date_range_bytes: Optional[int]
    #: The rendered folder plan, when a destination was given.
    plan: Optional[str]
    plan_notes: List[str]
    sample_read_mb_per_s: Optional[float]
    estimated_seconds: Optional[float]


class SkippedMessage(TypedDict):
    uid: int
    size: int
    #: The server's words for a refusal, or the limit that excluded it.
    reason: str


class FolderReport(TypedDict):
    """What happened to one folder."""

    source: str
    target: str
    found: int
    copied: int
    already_there: int
    skipped_by_filter: int
    too_large: List[SkippedMessage]
    refused: List[SkippedMessage]
    vanished: int
    flags_updated: int
    dropped_keywords: List[str]
    bytes: int
    seconds: float
    unchanged: bool
    # Messages whose metadata this pass read: all, or (CONDSTORE) only those changed since.
    listed: int
    listed_all: bool
    notes: List[str]
    #: Odd data the servers sent for this folder (an unasked FETCH, ``BODY[] NIL``, an
    #: unreadable INTERNALDATE or UID), each named; a report with any is not complete.
    anomalies: List["Anomaly"]
    #: Entries of a local store in this folder that were not imported.
    not_imported: List["NotImported"]


class Anomaly(TypedDict):
    """Something a server sent that was not asked for, could not be read, or was changed."""

    folder: Optional[str]
    uid: Optional[int]
    #: ``"Source"`` or ``"Destination"``.
    side: str
    detail: str


class NotImported(TypedDict):
    """A file or directory of a local store that was not imported, and why."""

    path: str
    reason: str


class MigrationReport(TypedDict):
    """What a migration did."""

    #: Every selected message is on the destination: nothing refused, skipped or failed.
    complete: bool
    folders: List[FolderReport]
    plan: str
    plan_notes: List[str]
    #: ``[source folder, error]`` for folders that failed for good.
    failed_folders: List[Tuple[str, str]]
    #: Anomalies outside any one folder (a LIST entry that cannot be read).
    anomalies: List[Anomaly]
    #: Local entries passed over while listing folders.
    not_imported: List[NotImported]
    dry_run: bool
    copied: int
    bytes: int
    seconds: float


class FolderVerification(TypedDict):
    source: str
    target: str
    source_messages: int
    destination_messages: int
    matched: int
    extra_on_destination: int
    #: Each difference as ``{"Missing": {...}}``, ``{"Flags": {...}}``, ...
    differences: List[dict]


class Verification(TypedDict):
    """What :func:`imapmig.verify` found."""

    #: Every source message is on the destination, byte for byte, with flags and date.
    identical: bool
    folders: List[FolderVerification]


class PlannedEvent(TypedDict):
    type: Literal["planned"]
    folders: int


class FolderStartedEvent(TypedDict):
    type: Literal["folder_started"]
    folder: str
    to_copy: int
    bytes: int


class ProgressUpdate(TypedDict):
    """Copies so far: at most one per ``progress_interval``, and one before each folder
    event."""

    type: Literal["progress"]
    folder: str
    copied: int
    bytes: int
    total_copied: int
    total_bytes: int


class MessageSkippedEvent(TypedDict):
    type: Literal["message_skipped"]
    folder: str
    uid: int
    reason: str


class RetryingEvent(TypedDict):
    type: Literal["retrying"]
    folder: str
    attempt: int
    after_ms: int
    error: str


class FolderDoneEvent(FolderReport):
    type: Literal["folder_done"]


ProgressEvent = Union[
    PlannedEvent,
    FolderStartedEvent,
    ProgressUpdate,
    MessageSkippedEvent,
    RetryingEvent,
    FolderDoneEvent,
]


# --- batch tasks -------------------------------------------------------------------------


class ImportReport(TypedDict):
    """What :meth:`imapmig.BatchTask.import_accounts` did."""

    layout: Literal["target_source_password", "microsoft365"]
    header: bool
    added: int
    updated: int
    waiting_for_credentials: int
    #: Bad rows left out (only with ``skip_bad_rows``): ``{"line", "problem"}``.
    skipped: List[Dict[str, Union[int, str]]]
    notes: List[str]


class AccountStatus(TypedDict):
    """One account of a batch task. Never holds a secret."""

    id: int
    target: str
    source: str
    #: not_started, scheduled, waiting_for_credentials, running, paused, synced, failed,
    #: stopped
    status: str
    #: Why it failed (authentication, quota, ...), when it did.
    failure: Optional[str]
    requested: Optional[str]
    has_credentials: bool
    folders_done: int
    folders_total: int
    messages: int
    bytes: int
    refused: int
    passes: int
    attempts: int
    last_error: Optional[str]
    source_server: str
    destination_server: str
    #: RFC 3339 times.
    started_at: Optional[str]
    synced_at: Optional[str]
    last_pass_at: Optional[str]
    next_pass_at: Optional[str]
    window_ends_at: Optional[str]
    updated_at: str


class TaskSummary(TypedDict):
    statuses: Dict[str, int]
    failures: Dict[str, int]
    accounts: int
    messages: int
    bytes: int
    refused: int


class ControlReport(TypedDict):
    """What a pause, resume or stop did."""

    changed: int
    #: Running accounts asked to pause or stop at the next message boundary.
    requested: int
    unchanged: int


class HostUsage(TypedDict):
    side: Literal["Source", "Destination"]
    host: str
    configured: int
    limit: int
    in_use: int
    accounts: int
    peak: int


# "pass" is a keyword, hence the functional form.
RunningAccount = TypedDict(
    "RunningAccount",
    {
        "id": int,
        "target": str,
        "pass": int,
        "folders_done": int,
        "folders_total": int,
        "copied": int,
        "connections": int,
    },
)


class LiveSnapshot(TypedDict):
    """What a running task is doing, handed to the progress callback."""

    seconds: float
    #: ``[status, count]`` pairs.
    statuses: List[Tuple[str, int]]
    running: List[RunningAccount]
    hosts: List[HostUsage]
    copied: int
    bytes: int


class RunSummary(TypedDict):
    """What :meth:`imapmig.BatchTask.run` did."""

    passes: int
    passes_synced: int
    passes_retried: int
    passes_failed: int
    passes_cancelled: int
    recovered: int
    copied: int
    bytes: int
    seconds: float
    peak_accounts: int
    hosts: List[HostUsage]
    statuses: List[Tuple[str, int]]
