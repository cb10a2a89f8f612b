"""Type stubs for the native half of imapmig. Use the public API in :mod:`imapmig`."""

from os import PathLike
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

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

__version__: str

class Account:
    """A mail server and the login to use on it.

    ``password`` is the password, or the OAuth2 access token with ``auth="xoauth2"`` or
    ``"oauthbearer"``; it never prints itself (``repr()`` shows ``***``) and cannot be read
    back. ``tls``: ``"tls"`` (implicit TLS, port 993 by default), ``"starttls"`` (port 143) or
    ``"none"`` (cleartext: lab servers only). ``ca_file`` adds trusted CA certificates (PEM);
    ``insecure=True`` skips certificate checks (lab servers only). ``authzid``: act for this
    user (administrator or Dovecot master-user login). ``timeout``: the longest single wait,
    in seconds. ``protocol="pop3"``: a POP3 server, a source only (the inbox, nothing
    deleted; ports 995/110 by default); ``uid_map``: the file keeping its UIDL table (default:
    beside the state file).

    Raises :class:`imapmig.ConfigError` for an unknown ``tls``, ``auth`` or ``protocol``.
    """

    def __init__(
        self,
        host: str,
        *,
        user: str,
        password: str,
        port: Optional[int] = None,
        tls: str = "tls",
        auth: str = "auto",
        authzid: Optional[str] = None,
        ca_file: Union[str, PathLike[str], None] = None,
        insecure: bool = False,
        timeout: float = 120.0,
        protocol: str = "imap",
        uid_map: Union[str, PathLike[str], None] = None,
    ) -> None: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def tls(self) -> str: ...
    @property
    def auth(self) -> str: ...
    @property
    def authzid(self) -> Optional[str]: ...
    @property
    def ca_file(self) -> Optional[PathLike[str]]: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def timeout(self) -> float: ...

class Migration:
    def __init__(
        self, source: Union[Account, str], destination: Union[Account, str], options: Optional[Dict[str, Any]] = None
    ) -> None: ...
    def run(
        self,
        progress: Optional[Callable[[ProgressEvent], Any]] = None,
        progress_interval: float = 0.1,
    ) -> MigrationReport: ...
    def run_async(
        self,
        progress: Optional[Callable[[ProgressEvent], Any]] = None,
        progress_interval: float = 0.1,
    ) -> Awaitable[MigrationReport]: ...
    def cancel(self) -> None: ...
    @property
    def running(self) -> bool: ...
    def stopped_async(self) -> Awaitable[None]: ...

def check(account: Account) -> CheckResult: ...
def check_async(account: Account) -> Awaitable[CheckResult]: ...
def analyze(
    source: Union[Account, str],
    destination: Union[Account, str, None] = None,
    options: Optional[Dict[str, Any]] = None,
) -> Analysis: ...
def analyze_async(
    source: Union[Account, str],
    destination: Union[Account, str, None] = None,
    options: Optional[Dict[str, Any]] = None,
) -> Awaitable[Analysis]: ...
def verify(
    source: Union[Account, str], destination: Union[Account, str], options: Optional[Dict[str, Any]] = None
) -> Verification: ...
def verify_async(
    source: Union[Account, str], destination: Union[Account, str], options: Optional[Dict[str, Any]] = None
) -> Awaitable[Verification]: ...

class BatchTask:
    @staticmethod
    def create(
        state: str,
        name: str,
        settings_json: str,
        source_secret: Optional[str] = None,
        destination_secret: Optional[str] = None,
    ) -> BatchTask: ...
    @staticmethod
    def open(state: str, name: str) -> BatchTask: ...
    @staticmethod
    def names(state: str) -> List[str]: ...
    @property
    def name(self) -> str: ...
    def settings(self) -> Dict[str, Any]: ...
    def edit(
        self,
        settings_json: str,
        source_secret: Optional[str] = None,
        destination_secret: Optional[str] = None,
        apply_to: str = "not_started",
    ) -> List[str]: ...
    def import_accounts(
        self, path: str, skip_bad_rows: bool = False, update_existing: bool = False
    ) -> ImportReport: ...
    def status(self, accounts: Optional[List[str]] = None) -> List[AccountStatus]: ...
    def summary(self) -> TaskSummary: ...
    def pause(self, accounts: Optional[List[str]] = None) -> ControlReport: ...
    def resume(self, accounts: Optional[List[str]] = None) -> ControlReport: ...
    def stop(self, accounts: Optional[List[str]] = None) -> ControlReport: ...
    def supply_credentials(self, account: str, password: str) -> List[Dict[str, Any]]: ...
    def audit(
        self, after: Optional[int] = None, limit: Optional[int] = None
    ) -> List[Dict[str, Any]]: ...
    def run(
        self,
        until_idle: bool = False,
        progress: Optional[Callable[[LiveSnapshot], Any]] = None,
        progress_interval: float = 1.0,
    ) -> RunSummary: ...
    def run_async(
        self,
        until_idle: bool = False,
        progress: Optional[Callable[[LiveSnapshot], Any]] = None,
        progress_interval: float = 1.0,
    ) -> Awaitable[RunSummary]: ...
    def cancel(self) -> None: ...
    @property
    def running(self) -> bool: ...
