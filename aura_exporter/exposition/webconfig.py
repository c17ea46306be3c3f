"""Access control in Prometheus' exporter-toolkit format: `--web.config.file`, the file node_exporter reads.

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), VerifyClientCertIfGiven...
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      alice: $2y$10$...                              # bcrypt, e.g. from `htpasswd -nBC 10 alice`

As in the toolkit, the users guard every path. Passwords and hashes are never logged; bcrypt's deliberate
slowness is paid once per login and bounded under a flood of guesses (Logins).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from aura_exporter.config import ConfigError
from aura_exporter.config.reader import DuplicateKeyLoader, Reader
from aura_exporter.probe import PROBE_PATHS

log = logging.getLogger(__name__)

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# exporter-toolkit's client_auth_type values; Python cannot ask for a certificate without checking a
# given one against a CA, so the "request" kinds verify what is given.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
               "RequireAnyClientCert": ssl.CERT_REQUIRED, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
REMEMBERED_LOGINS = 1000  # granted and refused logins, each
RECHECK_SECONDS = 1.0  # how often the web configuration's files are looked at for a change
CHECKS_PER_SECOND = 4.0  # bcrypt checks of logins not remembered: at cost 10, about a third of one core
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user → bcrypt hash
    files: tuple[str, ...] = ()  # the certificate, key and CA files read (a rotation changes them, not the file)
    tls_settings: tuple = ()  # what besides those files shapes the TLS context (a change needs a restart)


class WebConfigFile:
    """`--web.config.file`, read again when it or the files it names change, as exporter-toolkit reads its
    file on each request and handshake: rotated certificates and keys take effect on the next connection,
    changed users on the next request. A file that no longer reads is refused (logged, the last good one
    stays). TLS settings other than the files (on or off, client auth, CA, versions) need a restart:
    Python cannot change them on a listening socket."""

    def __init__(self, path: str):
        self.path = path
        self.config = load_web_config(path)  # ConfigError at start: the exporter does not start
        self._stamp = self._read_stamp()
        self._checked = time.monotonic()

    def latest(self) -> WebConfig:
        """The configuration now (a file system check at most every RECHECK_SECONDS)."""
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            stamp = self._read_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self.config

    def server_context(self) -> ssl.SSLContext | None:
        """The listening socket's TLS context; each handshake switches to the latest certificate and key."""
        first = self.config.tls
        if first is not None:
            first.sni_callback = self._latest_context  # called for every ClientHello, SNI or not
        return first

    def _latest_context(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        latest = self.latest().tls
        if latest is not None and latest is not connection.context:
            connection.context = latest

    def _reload(self) -> None:
        try:
            loaded = load_web_config(self.path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("web configuration change refused; the last good one stays",
                          extra={"file": err.source, "problem": problem})
            return
        if loaded.tls_settings != self.config.tls_settings:
            log.error("web configuration: TLS settings other than certificate and key files change only with a "
                      "restart; the last good configuration stays", extra={"file": self.path})
            return
        if loaded.tls is not None:
            loaded.tls.sni_callback = self._latest_context
        self.config = loaded
        log.info("web configuration reloaded", extra={"file": self.path, "users": len(loaded.users)})

    def _read_stamp(self) -> tuple:
        stamps: list[tuple[int, int, int] | None] = []
        for name in (self.path, *self.config.files):
            try:
                stat = os.stat(name)
                stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)


def load_web_config(path: str) -> WebConfig:
    """Parse and check the file; ConfigError lists every problem with its key path."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=DuplicateKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as err:
        raise ConfigError(path, [f"cannot read the file: {err.strerror}"]) from err
    except yaml.YAMLError as err:
        raise ConfigError(path, [f"invalid YAML: {err}"]) from err
    reader = Reader()
    root = reader.mapping(document or {}, "$", {"tls_server_config", "basic_auth_users", "http_server_config",
                                                "rate_limit"})
    _refuse(reader, root, "", {"rate_limit": "rate limits are built in (429 beyond four login checks a second)"})
    http = reader.mapping(root.get("http_server_config"), "http_server_config", {"http2", "headers"})
    reader.boolean(http.get("http2"), "http_server_config.http2", True)  # either way: HTTP/1.1 is what aiohttp serves
    _refuse(reader, http, "http_server_config.", {"headers": "extra response headers are not supported"})
    users = _read_users(reader, root.get("basic_auth_users"), "basic_auth_users")
    folder = os.path.dirname(os.path.abspath(path))
    tls = _read_tls(reader, root.get("tls_server_config"), "tls_server_config", folder)
    if reader.problems:
        raise ConfigError(path, reader.problems)
    node = root.get("tls_server_config") or {}
    files = tuple(os.path.join(folder, node[key]) for key in ("cert_file", "key_file", "client_ca_file") if key in node)
    settings = (tls is not None, *sorted((key, repr(value)) for key, value in node.items()
                                         if key not in ("cert_file", "key_file")))
    return WebConfig(tls, users, files, settings)


def _read_users(reader: Reader, value: Any, path: str) -> dict[str, bytes]:
    node = reader.mapping(value, path, set(value) if isinstance(value, dict) else set())
    users = {}
    for name, hashed in node.items():
        if not isinstance(name, str) or not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            reader.fail(f"{path}.{name}", "expected a bcrypt hash ($2a$, $2b$ or $2y$, a cost of 04 to 31, "
                                          "53 characters of salt and hash)")  # never the value
        else:
            users[name] = hashed.encode()
    return users


# exporter-toolkit keys this exporter cannot honour as the toolkit does: refused with why, never ignored.
UNSUPPORTED_TLS = {
    "cipher_suites": "Python's TLS names its ciphers otherwise; its defaults leave out weak suites",
    "curve_preferences": "Python's TLS sets no curve order",
    "client_allowed_sans": "client certificates are checked against client_ca_file only",
    "cert": "give the certificate as cert_file", "key": "give the key as key_file",
    "client_ca": "give the CA as client_ca_file",
}


def _refuse(reader: Reader, node: dict, prefix: str, unsupported: dict[str, str]) -> None:
    for key in unsupported.keys() & node.keys():
        reader.fail(f"{prefix}{key}", f"not supported: {unsupported[key]}")


def _read_tls(reader: Reader, value: Any, path: str, folder: str) -> ssl.SSLContext | None:
    """The server's TLS context; relative file names are the web configuration file's folder's (as in the toolkit)."""
    if value is None:
        return None
    allowed = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
               "prefer_server_cipher_suites", *UNSUPPORTED_TLS}
    node = reader.mapping(value, path, allowed, {"cert_file", "key_file"})
    _refuse(reader, node, f"{path}.", UNSUPPORTED_TLS)

    def file(key: str) -> str | None:
        name = node.get(key)
        return reader.readable_file(os.path.join(folder, name) if isinstance(name, str) else name, f"{path}.{key}")

    cert, key, client_ca = file("cert_file"), file("key_file"), file("client_ca_file")
    auth = reader.string(node.get("client_auth_type"), f"{path}.client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        reader.fail(f"{path}.client_auth_type", f"{auth!r} is not one of {', '.join(CLIENT_AUTH)}")
        auth = "NoClientCert"
    if CLIENT_AUTH[auth] != ssl.CERT_NONE and client_ca is None:
        reader.fail(f"{path}.client_ca_file", f"client_auth_type {auth} needs a client_ca_file")
    if CLIENT_AUTH[auth] == ssl.CERT_NONE and client_ca is not None:  # the toolkit refuses it too
        reader.fail(f"{path}.client_auth_type", "client_ca_file is set but no client_auth_type asks for certificates "
                                                "(e.g. RequireAndVerifyClientCert): clients would not need one")
    prefer_server = reader.boolean(node.get("prefer_server_cipher_suites"), f"{path}.prefer_server_cipher_suites",
                                   True)
    versions = {}
    for bound in ("min_version", "max_version"):
        name = reader.string(node.get(bound), f"{path}.{bound}")
        if name is not None and name not in TLS_VERSIONS:
            reader.fail(f"{path}.{bound}", f"{name!r} is not one of {', '.join(TLS_VERSIONS)}")
        elif name is not None:
            versions[bound] = TLS_VERSIONS[name]
    if reader.problems or cert is None or key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if prefer_server:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.minimum_version = versions.get("min_version", ssl.TLSVersion.TLSv1_2)
    if "max_version" in versions:
        context.maximum_version = versions["max_version"]
    try:
        context.load_cert_chain(cert, key)
        if client_ca:
            context.load_verify_locations(client_ca)
    except (ssl.SSLError, OSError) as err:
        reader.fail(path, f"cannot load the certificate, key or CA: {err}")
        return None
    context.verify_mode = CLIENT_AUTH[auth]
    return context


def basic_auth(users: Callable[[], Mapping[str, bytes]], probe_token: str | None = None) -> Callable:
    """aiohttp middleware: with `users()` (the latest of the web configuration; none: open), 401 unless the
    request carries one of the users and its password, or is a probe of the container's own
    (aura_exporter/probe.py) carrying `probe_token`; 429 while logins are being tried faster than Logins
    checks them."""
    logins = Logins(users)
    probe = f"Bearer {probe_token}".encode() if probe_token else None

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if not users():
            return await handler(request)
        if probe is not None and request.path in PROBE_PATHS and hmac.compare_digest(
                request.headers.get("Authorization", "").encode(errors="replace"), probe):
            return await handler(request)
        user, password = _credentials(request.headers.get("Authorization", ""))
        if user is None or password is None:
            return _unauthorized()
        granted = await logins.check(user, password)
        if granted is None:
            return web.Response(status=429, text="Too many logins tried; retry in a second.\n",
                                headers={"Retry-After": "1"})
        return await handler(request) if granted else _unauthorized()

    return check


class Logins:
    """Checks users' passwords against their bcrypt hashes, with bcrypt's cost bounded however many logins come.

    - A login checked once (right or wrong) is remembered by a salted digest: a scraper pays bcrypt once,
      and a client repeating a wrong password pays nothing more.
    - An unknown user is checked against a decoy hash of the users' own cost, so the time a refusal takes
      does not tell which users exist.
    - Checks run one at a time on their own thread (not the executor that renders snapshots), at most
      CHECKS_PER_SECOND on average with as many at once; beyond that a login is refused for now (None), so
      a flood of guesses costs a bounded share of one core, and a remembered login never waits behind it.
    """

    def __init__(self, users: Callable[[], Mapping[str, bytes]]):
        self.users = users
        self.salt = os.urandom(16)
        self.granted: set[bytes] = set()
        self.refused: set[bytes] = set()
        self._decoys: tuple[Mapping[str, bytes], bytes] | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aura-bcrypt")
        self.allowance = CHECKS_PER_SECOND
        self.refilled = time.monotonic()

    async def check(self, user: str, password: bytes) -> bool | None:
        """Whether the password is the user's; None when too many logins are being checked right now."""
        users = self.users()
        hashed = users.get(user)
        login = hashlib.sha256(self.salt + user.encode() + b"\0" + password + b"\0" + (hashed or b"")).digest()
        if login in self.granted or login in self.refused:
            return login in self.granted
        if not self._take():
            return None
        loop = asyncio.get_running_loop()
        matches = await loop.run_in_executor(self.executor, bcrypt.checkpw, password, hashed or self._decoy(users))
        granted = matches and hashed is not None
        remembered = self.granted if granted else self.refused
        if len(remembered) >= REMEMBERED_LOGINS:
            remembered.clear()
        remembered.add(login)
        return granted

    def _decoy(self, users: Mapping[str, bytes]) -> bytes:
        """A hash of nothing at the users' cost, made again when the users change."""
        if self._decoys is None or self._decoys[0] is not users:
            self._decoys = users, bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(rounds=_cost(users)))
        return self._decoys[1]

    def _take(self) -> bool:
        """A token of the bucket that refills at CHECKS_PER_SECOND and holds as many."""
        now = time.monotonic()
        self.allowance = min(CHECKS_PER_SECOND, self.allowance + (now - self.refilled) * CHECKS_PER_SECOND)
        self.refilled = now
        if self.allowance < 1.0:
            return False
        self.allowance -= 1.0
        return True


def _cost(users: Mapping[str, bytes]) -> int:
    """The users' bcrypt cost (the highest), so the decoy takes as long as a real check."""
    return max((int(hashed[4:6]) for hashed in users.values()), default=10)


def _credentials(header: str) -> tuple[str | None, bytes | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, separator, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (user.decode(), password) if separator else (None, None)
    except (binascii.Error, UnicodeDecodeError):
        return None, None


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="Unauthorized\n",
                        headers={"WWW-Authenticate": 'Basic realm="aura-exporter", charset="UTF-8"'})
