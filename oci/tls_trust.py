"""The trust of every HTTPS client wharfie makes, and the CA certificates of `$SSL_CERT_DIR` read as Go reads them.

`https_context()` is where each client's SSL context starts (the registry
session, GitLab's REST API for `wharfie cleanup`, ADD's downloads): the
system's trust as OpenSSL finds it (so `$SSL_CERT_FILE`), plus every
certificate in `$SSL_CERT_DIR`'s files, plus a CA file the user named. It
is not httpx's default, which takes certifi's bundle, or only
`$SSL_CERT_FILE` when set and `$SSL_CERT_DIR` only by hash-named files.

OpenSSL, and so Python's `ssl`, looks a certificate up in `SSL_CERT_DIR` by
its subject hash (`c_rehash` names such as `3513523f.0`): a bundle put there
under any other name is never found. Go (kaniko, skopeo, docker) reads every
file of every directory in the colon-separated list and keeps each
`CERTIFICATE` block it can parse (crypto/x509, root_unix.go). kaniko's image
sets `SSL_CERT_DIR=/kaniko/ssl/certs`, and GitLab's documentation has kaniko
jobs add their private CA as `/kaniko/ssl/certs/additional-ca-cert-bundle.crt`;
reading the directories the same way keeps such a job working in wharfie's image.

As Go does, a symbolic link to a file of the same directory (a hash link) is
left to its target, unreadable directories and files are skipped, and blocks
that do not parse are skipped. The directories are read once per process
(trust is fixed when the first HTTPS client is made, whatever a build writes
later); certificates the context already trusts are not loaded twice.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import re
import ssl

from oci.errors import WharfieError

__all__ = ["https_context", "trust_cert_dirs"]

log = logging.getLogger(__name__)

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.DOTALL)


def https_context(*, ca_file: str | None = None, server: str | None = None) -> ssl.SSLContext:
    """A verifying client context trusting the system's CAs, `$SSL_CERT_DIR`'s and `ca_file`'s (for `server`,
    named in the error when `ca_file` cannot be loaded). A new context each time: callers may add to it."""
    context = ssl.create_default_context()
    trust_cert_dirs(context)
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            where = f" for {server}" if server else ""
            raise WharfieError(f"cannot load the CA certificate {ca_file}{where}: {exc}") from None
    return context


def trust_cert_dirs(context: ssl.SSLContext) -> None:
    """Add to `context` the certificates of the files in `$SSL_CERT_DIR`'s directories."""
    listed = os.environ.get("SSL_CERT_DIR", "")
    known = set(context.get_ca_certs(binary_form=True))
    for directory in filter(None, listed.split(":")):
        for path, der in _certificates_in(directory):
            if der in known:
                continue
            try:
                context.load_verify_locations(cadata=der)
            except ssl.SSLError as exc:
                log.debug("$SSL_CERT_DIR: a certificate in %s does not parse, skipped: %s", path, exc)
                continue
            known.add(der)
            log.debug("$SSL_CERT_DIR: trusting a CA certificate from %s", path)


@functools.cache
def _certificates_in(directory: str) -> tuple[tuple[str, bytes], ...]:
    """(file, DER) of every CERTIFICATE block in the directory's files, by file name."""
    try:
        with os.scandir(directory) as entries:
            files = sorted((entry for entry in entries if not _hash_link(entry)), key=lambda entry: entry.name)
    except OSError as exc:
        log.debug("$SSL_CERT_DIR: %s not read: %s", directory, exc)
        return ()
    found = []
    for entry in files:
        try:
            with open(entry.path, "rb") as handle:
                data = handle.read()
        except OSError:  # a directory, a dangling link, no permission: Go skips these too
            continue
        for block in _PEM_CERTIFICATE.finditer(data):
            try:
                found.append((entry.path, base64.b64decode(block.group(1), validate=False)))
            except binascii.Error:
                continue
    return tuple(found)


def _hash_link(entry: os.DirEntry[str]) -> bool:
    """A symbolic link to a file of the same directory: Go reads only its target."""
    try:
        return entry.is_symlink() and "/" not in os.readlink(entry.path)
    except OSError:
        return False
