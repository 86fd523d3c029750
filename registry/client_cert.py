"""A client certificate for mutual TLS (kaniko's ``--registry-client-cert``), loaded with the file at fault named.

`ssl.SSLContext.load_cert_chain` answers "[SSL] PEM lib" whichever of the two
files is wrong, and "No such file or directory" without saying which; a user
holding a certificate and a key needs to know which one to fix. So each file
is first opened (a missing or unreadable one is named), the certificate is
parsed alone (`load_verify_locations` reads PEM certificates and nothing else),
and only then is the pair loaded: a failure there is the key's (not a PEM
private key, encrypted, or not this certificate's key). The standard library's
ssl module does all of it; no other library is needed to read a PEM file.
"""

from __future__ import annotations

import ssl

from registry.errors import RegistryError

__all__ = ["ClientCertificateError", "load_client_certificate"]


class ClientCertificateError(RegistryError):
    """A client certificate or key that cannot be used; `path` is the file at fault."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


def _readable(path: str, what: str, registry: str) -> None:
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as exc:
        raise ClientCertificateError(f"cannot read the client {what} {path} for {registry}: "
                                     f"{exc.strerror or exc}", path=path) from None


class _Encrypted(Exception):
    """The key asked for a password: OpenSSL would otherwise prompt on the terminal."""


def _refuse_password() -> bytes:
    raise _Encrypted


def load_client_certificate(context: ssl.SSLContext, cert: str, key: str, *, registry: str) -> None:
    """Make `context` present `cert` (PEM, with its chain) and `key` (PEM, unencrypted) to `registry`."""
    _readable(cert, "certificate", registry)
    _readable(key, "key", registry)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise ClientCertificateError(f"cannot use the client certificate {cert} for {registry}: it holds no PEM "
                                     "certificate",
                                     path=cert) from None
    try:
        context.load_cert_chain(certfile=cert, keyfile=key, password=_refuse_password)
    except _Encrypted:
        raise ClientCertificateError(f"cannot use the client key {key} for {registry}: it is encrypted (give it "
                                     "unencrypted, as kaniko needs it too)", path=key) from None
    except ssl.SSLError as exc:
        why = ("it is not the key of the certificate " + cert if exc.reason == "KEY_VALUES_MISMATCH"
               else "it holds no PEM private key")
        raise ClientCertificateError(f"cannot use the client key {key} for {registry}: {why}", path=key) from None
