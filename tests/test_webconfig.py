"""--web.config.file in exporter-toolkit's format: TLS (with client certificates) and bcrypt basic auth,
against the real exporter process, with certificates made by openssl."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import bcrypt
import pytest
import yaml
from conftest import REPO, wait_for
from test_promql import make_certificates

from aura_exporter.config import ConfigError
from aura_exporter.exposition.webconfig import load_web_config

PASSWORD = "correct horse battery staple"


def web_config(tmp_path, **document) -> str:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)


def basic(user: str, password: str | None) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get(url: str, user: str | None = None, password: str | None = None, context: ssl.SSLContext | None = None):
    request = urllib.request.Request(url, headers=basic(user, password) if user is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_basic_auth_guards_every_path_and_never_logs_a_secret(tmp_path, exporters):
    secret_hash = hashed(PASSWORD)
    path = web_config(tmp_path, basic_auth_users={"alice": secret_hash})
    exporter = exporters(["demo", f"--web.config.file={path}", f"--storage.path={tmp_path}", "--replay.hosts=5"])
    for route in ("/metrics", "/", "/api/v1/status", "/ui", "/-/healthy"):
        assert get(exporter.url + route)[0] == 401, route
        assert get(exporter.url + route, "alice", "wrong")[0] == 401, route
        assert get(exporter.url + route, "mallory", PASSWORD)[0] == 401, route
    assert get(exporter.url + "/-/healthy", "alice", PASSWORD)[0] == 200
    status, body = get(exporter.url + "/metrics", "alice", PASSWORD)
    assert status == 200 and b"aura_exporter_build_info" in body
    request = urllib.request.Request(exporter.url + "/-/reload", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401  # /-/reload sits behind the same auth
    log = exporter.log()
    assert PASSWORD not in log and secret_hash not in log and secret_hash[7:] not in log


def test_tls_with_client_certificates(tmp_path, exporters):
    certs = make_certificates(tmp_path)
    path = web_config(tmp_path, tls_server_config={
        "cert_file": certs["server.crt"], "key_file": certs["server.key"], "client_ca_file": certs["ca.crt"],
        "client_auth_type": "RequireAndVerifyClientCert", "min_version": "TLS12"})
    exporter = exporters(["demo", f"--web.config.file={path}", f"--storage.path={tmp_path}", "--replay.hosts=5"])
    url = f"https://127.0.0.1:{exporter.port}/-/healthy"

    trusted = ssl.create_default_context(cafile=certs["ca.crt"])
    trusted.load_cert_chain(certs["client.crt"], certs["client.key"])
    assert get(url, context=trusted)[0] == 200
    status, body = get(f"https://127.0.0.1:{exporter.port}/metrics", context=trusted)  # no sendfile over TLS
    assert status == 200 and b"# TYPE aura_risk_score gauge" in body and b"aura_exporter_build_info" in body

    no_client_cert = ssl.create_default_context(cafile=certs["ca.crt"])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        get(url, context=no_client_cert)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):  # plain HTTP to the TLS port
        get(f"http://127.0.0.1:{exporter.port}/-/healthy")
    untrusting = ssl.create_default_context()  # the system CAs do not know our test CA
    with pytest.raises((ssl.SSLError, urllib.error.URLError)):
        get(url, context=untrusting)


def test_relative_file_names_are_the_web_config_files_folders(tmp_path, monkeypatch):
    certs = make_certificates(tmp_path)
    folder = tmp_path / "conf"
    folder.mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        (folder / name).write_bytes(open(certs[name], "rb").read())
    path = web_config(folder, tls_server_config={"cert_file": "server.crt", "key_file": "server.key",
                                                  "client_ca_file": "ca.crt",
                                                  "client_auth_type": "RequireAndVerifyClientCert"},
                      http_server_config={"http2": False})
    monkeypatch.chdir(REPO)  # not the file's folder
    loaded = load_web_config(path)
    assert loaded.tls is not None and loaded.tls.verify_mode == ssl.CERT_REQUIRED
    assert loaded.tls.options & ssl.OP_CIPHER_SERVER_PREFERENCE  # prefer_server_cipher_suites, true by default


def test_rotated_certificates_and_changed_users_take_effect_without_a_restart(tmp_path, exporters):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    make_certificates(first)
    make_certificates(second)
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.crt", "server.key"):
        (live / name).write_bytes((first / name).read_bytes())
    tls = {"cert_file": "live/server.crt", "key_file": "live/server.key"}  # relative to the file's folder
    path = web_config(tmp_path, tls_server_config=tls, basic_auth_users={"alice": hashed(PASSWORD)})
    exporter = exporters(["demo", f"--web.config.file={path}", f"--storage.path={tmp_path}", "--replay.hosts=5"])
    url = f"https://127.0.0.1:{exporter.port}/-/healthy"
    context = ssl._create_unverified_context()

    def served_certificate() -> bytes:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as raw:
            with context.wrap_socket(raw) as wrapped:
                return wrapped.getpeercert(binary_form=True)

    def pem_as_der(path) -> bytes:
        return ssl.PEM_cert_to_DER_cert(path.read_text())

    assert served_certificate() == pem_as_der(first / "server.crt")
    assert get(url, "alice", PASSWORD, context)[0] == 200
    for name in ("server.crt", "server.key"):  # a rotation, as cert-manager does it: new files, same names
        (live / name).write_bytes((second / name).read_bytes())
    wait_for(lambda: served_certificate() == pem_as_der(second / "server.crt"), 15, what="the new certificate")
    web_config(tmp_path, tls_server_config=tls, basic_auth_users={"bob": hashed(PASSWORD)})
    wait_for(lambda: get(url, "bob", PASSWORD, context)[0] == 200, 15, what="the new user")
    assert get(url, "alice", PASSWORD, context)[0] == 401
    (tmp_path / "web.yml").write_text("basic_auth_users: [}")  # a broken edit: the last good one stays
    time.sleep(2.5)
    assert get(url, "bob", PASSWORD, context)[0] == 200
    assert "web configuration change refused" in exporter.log() and PASSWORD not in exporter.log()


def probe(exporter, storage, path: str = "/-/healthy") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aura_exporter.probe", f"--probe.path={path}",
                           f"--web.listen-address=127.0.0.1:{exporter.port}", f"--storage.path={storage}"],
                          capture_output=True, text=True, timeout=30, cwd=REPO)


@pytest.mark.parametrize("tls", [True, False], ids=["tls+auth", "auth"])
def test_the_container_probe_passes_tls_and_basic_auth_and_opens_nothing_else(tmp_path, exporters, tls):
    document: dict = {"basic_auth_users": {"alice": hashed(PASSWORD)}}
    if tls:
        certs = make_certificates(tmp_path)
        document["tls_server_config"] = {"cert_file": certs["server.crt"], "key_file": certs["server.key"]}
    exporter = exporters(["demo", f"--web.config.file={web_config(tmp_path, **document)}",
                          f"--storage.path={tmp_path}", "--replay.hosts=5"])
    assert (tmp_path / "probe-token").stat().st_mode & 0o077 == 0  # the exporter's user alone reads it
    healthy = probe(exporter, tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    wait_for(lambda: probe(exporter, tmp_path, "/-/ready").returncode == 0, 60, what="ready through the probe")
    token = (tmp_path / "probe-token").read_text()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{exporter.port}"
    context = ssl._create_unverified_context() if tls else None
    for route in ("/metrics", "/api/v1/status", "/ui"):  # the token opens the probes' paths, nothing else
        request = urllib.request.Request(url + route, headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10, context=context)
        assert refused.value.code == 401, route
    (tmp_path / "probe-token").write_text("guessed")
    assert probe(exporter, tmp_path).returncode == 1


def serve_guarded(users: dict[str, bytes], scenario) -> None:
    """A real aiohttp server on loopback behind basic_auth(users), answering 200 on /."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from aura_exporter.exposition.webconfig import basic_auth

    async def main():
        app = web.Application(middlewares=[basic_auth(lambda: users)])
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app.router.add_get("/", hello)
        async with TestClient(TestServer(app)) as client:
            await scenario(client)

    asyncio.run(main())


def test_logins_check_unknown_users_against_a_decoy_and_remember_every_answer(monkeypatch):
    checked: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda password, hashed: checked.append(hashed) or real(password, hashed))
    users = {"alice": hashed(PASSWORD).encode()}

    async def scenario(client):
        assert (await client.get("/", headers=basic("mallory", PASSWORD))).status == 401
        assert len(checked) == 1 and checked[0] not in users.values()  # a decoy: as slow as a real user's check
        assert checked[0][4:7] == users["alice"][4:7]  # ...of the same cost
        for _ in range(3):
            assert (await client.get("/", headers=basic("alice", "wrong"))).status == 401
        assert len(checked) == 2  # a repeated wrong password is refused from memory
        for _ in range(3):
            assert (await client.get("/", headers=basic("alice", PASSWORD))).status == 200
        assert len(checked) == 3

    serve_guarded(users, scenario)


def test_a_flood_of_guesses_is_bounded_and_a_known_login_never_waits_behind_it(monkeypatch):
    from aura_exporter.exposition import webconfig

    monkeypatch.setattr(webconfig, "CHECKS_PER_SECOND", 2.0)
    users = {"alice": hashed(PASSWORD).encode()}

    async def scenario(client):
        assert (await client.get("/", headers=basic("alice", PASSWORD))).status == 200  # remembered from now on
        answers = await asyncio.gather(*(client.get("/", headers=basic("alice", f"guess-{i}")) for i in range(20)))
        statuses = [a.status for a in answers]
        assert statuses.count(401) <= 2 and statuses.count(429) >= 18  # two checks a second at most
        assert all(a.headers.get("Retry-After") == "1" for a in answers if a.status == 429)
        assert (await client.get("/", headers=basic("alice", PASSWORD))).status == 200  # no wait, no bcrypt

    serve_guarded(users, scenario)


@pytest.mark.parametrize(("document", "mentions"), [
    ({"basic_auth_users": {"alice": "plaintext-password"}}, "basic_auth_users.alice"),
    ({"basic_auth_users": {"alice": "$2y$10$only-a-prefix"}}, "basic_auth_users.alice"),  # checked whole, at start
    ({"basic_auth_users": {"alice": "$2y$99$" + "a" * 53}}, "basic_auth_users.alice"),
    ({"tls_server_config": {"cert_file": "/nonexistent.crt", "key_file": "/nonexistent.key"}},
     "tls_server_config.cert_file"),
    ({"tls_server_config": {"key_file": "x"}}, "tls_server_config"),
    ({"tls_server_config": {"cert_file": str(REPO / "README.md"), "key_file": str(REPO / "README.md"),
                            "min_version": "SSL3"}}, "tls_server_config.min_version"),
    ({"tls_server_config": {"cert_file": str(REPO / "README.md"), "key_file": str(REPO / "README.md"),
                            "client_auth_type": "RequireAndVerifyClientCert"}}, "tls_server_config.client_ca_file"),
    ({"basic_auth_user": {}}, "basic_auth_user"),
    # exporter-toolkit keys that cannot be honoured are refused, not ignored
    ({"tls_server_config": {"cert_file": str(REPO / "README.md"), "key_file": str(REPO / "README.md"),
                            "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}}, "tls_server_config.cipher_suites"),
    ({"tls_server_config": {"cert_file": str(REPO / "README.md"), "key_file": str(REPO / "README.md"),
                            "curve_preferences": ["X25519"]}}, "tls_server_config.curve_preferences"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "deny"}}}, "http_server_config.headers"),
    ({"rate_limit": {"burst": 10, "interval": "1s"}}, "rate_limit"),
    # a client CA without a policy that asks for certificates would admit clients without one (the toolkit refuses)
    ({"tls_server_config": {"cert_file": str(REPO / "README.md"), "key_file": str(REPO / "README.md"),
                            "client_ca_file": str(REPO / "README.md")}}, "tls_server_config.client_auth_type"),
])
def test_bad_web_configs_are_refused_with_their_key_path_and_no_secret(tmp_path, document, mentions):
    path = web_config(tmp_path, **document)
    with pytest.raises(ConfigError) as refused:
        load_web_config(path)
    assert any(mentions in problem for problem in refused.value.problems), refused.value.problems
    assert "plaintext-password" not in str(refused.value)
    started = subprocess.run([sys.executable, "-m", "aura_exporter", "demo", f"--web.config.file={path}",
                              f"--storage.path={tmp_path}"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert started.returncode == 1 and "invalid web configuration" in started.stderr
    assert "plaintext-password" not in started.stderr


def test_a_certificate_that_does_not_load_is_refused(tmp_path):
    path = web_config(tmp_path, tls_server_config={"cert_file": str(REPO / "README.md"),
                                                   "key_file": str(REPO / "README.md")})
    with pytest.raises(ConfigError) as refused:
        load_web_config(path)
    assert any("cannot load the certificate" in p for p in refused.value.problems)
