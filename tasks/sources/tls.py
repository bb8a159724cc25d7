"""TLS for the listener: a server ``ssl.SSLContext`` from the configured PEM files (TLS 1.2 or newer)."""

from __future__ import annotations

import ssl

from tasks.errors import ConfigError
from tasks.sources.config import TlsConfig


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """Our certificate and key; with ``ca_file``, clients must present a certificate that CA signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError):
        raise ConfigError("listener TLS: cannot load tls.cert_file / tls.key_file (PEM certificate and key)") from None
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.ca_file))
        except (OSError, ssl.SSLError):
            raise ConfigError("listener TLS: cannot load tls.ca_file (PEM certificates of trusted CAs)") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
