//! API-SSL transport. TODO: rustls-based implementation.

use std::net::TcpStream;

use super::client::{Error, Stream, TlsOptions};

pub(super) fn wrap(
    _tcp: TcpStream,
    _host: &str,
    _opts: &TlsOptions,
) -> Result<Box<dyn Stream>, Error> {
    Err(Error::Tls("TLS support is not built in".into()))
}
