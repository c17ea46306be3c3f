"""`python -m aura_exporter.probe`: the liveness and readiness check of a container, with TLS and basic auth on.

Kubernetes probes and Docker's HEALTHCHECK hold no password, so an HTTP probe fails once basic auth guards
every path (as exporter-toolkit's web configuration has it), and a plain-HTTP one once TLS is on. So at
each start the exporter writes a random token to `<storage.path>/probe-token`, readable by its own user
only, and accepts it (`Authorization: Bearer`) on PROBE_PATHS alone. This check runs in the exporter's
container: it reads the token, asks over TLS and, when the exporter answers the handshake as plain HTTP,
over plain HTTP (the exporter is its own loopback address, so its certificate is not checked), and exits
0 on a 200. Only the standard library: a probe every few seconds must start fast. An exporter that
requires client certificates (`client_auth_type: RequireAndVerifyClientCert`) refuses it: probe its TCP
port instead.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_LISTEN_ADDRESS = ":10470"  # outside 9100-9999, which the exporter port registry has filled
TOKEN_FILE = "probe-token"
PROBE_PATHS = ("/-/healthy", "/-/ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aura_exporter.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--probe.path", dest="path", choices=PROBE_PATHS, default=PROBE_PATHS[0])
    parser.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN_ADDRESS,
                        help="the exporter's (default %(default)s)")
    parser.add_argument("--storage.path", dest="storage", default="data", help="the exporter's (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        token = (Path(args.storage) / TOKEN_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as err:
        print(f"cannot probe: {err}", file=sys.stderr)
        return 1
    try:
        try:
            status, text = ask(loopback_url(args.listen_address, tls=True) + args.path, token, args.timeout)
        except ssl.SSLError:  # a plain-HTTP exporter answered the handshake
            status, text = ask(loopback_url(args.listen_address, tls=False) + args.path, token, args.timeout)
    except (OSError, ValueError) as err:
        print(f"cannot reach the exporter: {err}", file=sys.stderr)
        return 1
    print(f"{status}: {text}", file=sys.stdout if status == 200 else sys.stderr)
    return 0 if status == 200 else 1


def ask(url: str, token: str, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    context = ssl._create_unverified_context()  # the exporter's own certificate, over loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read(200).decode(errors="replace").strip()
    except urllib.error.HTTPError as err:
        return err.code, err.read(200).decode(errors="replace").strip()
    except urllib.error.URLError as err:
        if isinstance(err.reason, ssl.SSLError):
            raise err.reason from err
        raise


def loopback_url(listen_address: str, tls: bool) -> str:
    """The exporter at its own address, or at loopback when it listens on every interface."""
    host, _, port = listen_address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{port}"


if __name__ == "__main__":
    sys.exit(main())
