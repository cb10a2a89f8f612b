"""The exceptions imapmig raises.

Every failure of the library is an :class:`ImapmigError`; the subclass says what kind of
failure it is, and the attributes say where and whether trying again later may help::

    ImapmigError
    ├── ConfigError          bad options (also a ValueError)
    ├── AuthenticationError  the server refused the login
    ├── ConnectionError      cannot connect, or the connection broke or timed out
    ├── TlsError             certificate not trusted, STARTTLS missing, cleartext refused
    ├── QuotaError           the destination is over its quota
    ├── ServerError          the server refused a command or broke the protocol
    ├── StorageError         a local file or folder could not be read or written
    ├── PlanError            the folder plan cannot be made (fix the options)
    ├── StateError           the sync-state file failed
    ├── CancelledError       the migration was cancelled; running it again resumes
    └── BatchError           a batch task: bad CSV rows, unknown task or account, ...

Messages already refused by the destination one by one (over quota, too large) do not raise:
they are listed in the report (``report["folders"][i]["refused"]``) and
``report["complete"]`` is false.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
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
]


class ImapmigError(Exception):
    """Any imapmig failure.

    Attributes:
        kind: ``"config"``, ``"authentication"``, ``"connection"``, ``"tls"``, ``"quota"``,
            ``"server"``, ``"storage"``, ``"plan"``, ``"state"``, ``"cancelled"``,
            ``"internal"``, or for :class:`BatchError` ``"csv"``, ``"unknown_task"``,
            ``"unknown_account"``, ``"task_exists"``, ``"locked"``, ``"not_allowed"``.
        transient: whether the same call may succeed later (a dropped connection,
            throttling).
        side: ``"source"`` or ``"destination"`` when the failure belongs to one server.
        folder: the source folder being copied, when the failure belongs to one.
    """

    kind: str
    transient: bool
    side: Optional[str]
    folder: Optional[str]

    def __init__(
        self,
        message: str,
        *,
        kind: str = "internal",
        transient: bool = False,
        side: Optional[str] = None,
        folder: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        self.side = side
        self.folder = folder


class ConfigError(ImapmigError, ValueError):
    """An option has a value the library cannot use; the message names it."""


class AuthenticationError(ImapmigError):
    """The server refused the login: wrong user name, password or token."""


class ConnectionError(ImapmigError):  # noqa: A001 - deliberately imapmig.ConnectionError
    """The server cannot be reached, or the connection broke or timed out.

    Usually :attr:`transient`: trying again later may work.
    """


class TlsError(ImapmigError):
    """TLS failed (untrusted or mismatched certificate), STARTTLS is missing, or a password
    would have been sent in clear text."""


class QuotaError(ImapmigError):
    """The destination is over its quota."""


class ServerError(ImapmigError):
    """The server refused a command or broke the protocol; the message has its words."""


class StorageError(ImapmigError):
    """A local file or folder (a Maildir, an mbox) could not be read or written."""


class PlanError(ImapmigError):
    """The folder plan cannot be made: two folders would land in one place, or a pattern or
    rename is invalid. Fix the options (a rename usually resolves a collision)."""


class StateError(ImapmigError):
    """The sync-state file could not be opened, read or written. Nothing is lost: run again
    once it is fixed."""


class CancelledError(ImapmigError):
    """The migration was cancelled (:meth:`imapmig.Migration.cancel`). Everything copied so
    far is recorded; running the migration again resumes where it stopped.

    Not to be confused with :class:`asyncio.CancelledError`, which the async forms raise when
    their task is cancelled.
    """


class BatchError(ImapmigError):
    """A batch task refused an operation; :attr:`kind` says why:

    * ``"csv"``: the CSV file cannot be read or has bad rows (each named with its line;
      nothing was imported);
    * ``"unknown_task"``, ``"unknown_account"``: no such task or account;
    * ``"task_exists"``: a task of that name exists already;
    * ``"locked"``: another process runs this task;
    * ``"not_allowed"``: the account's status does not allow it.

    Account failures during a run are not exceptions: they are statuses in
    :meth:`imapmig.BatchTask.status`.
    """
