//! API-SSL transport (RouterOS port 8729) over rustls, behind the
//! `routeros-tls` feature.
//!
//! Not supported: API-SSL without a certificate, where RouterOS offers only
//! anonymous Diffie-Hellman ciphers (rustls has none); give the router a
//! certificate (a self-signed one works with `TlsVerify::AcceptAny`).

use std::net::TcpStream;
use std::time::Duration;

#[cfg(feature = "routeros-tls")]
use super::client::TlsVerify;
use super::client::{Error, Stream, TlsOptions};

#[cfg(not(feature = "routeros-tls"))]
pub(super) fn wrap(
    _tcp: TcpStream,
    _host: &str,
    _opts: &TlsOptions,
    _io_timeout: Duration,
) -> Result<Box<dyn Stream>, Error> {
    Err(Error::Tls(
        "TLS support is not built in (cargo feature routeros-tls)".into(),
    ))
}

#[cfg(feature = "routeros-tls")]
pub(super) fn wrap(
    mut tcp: TcpStream,
    host: &str,
    opts: &TlsOptions,
    io_timeout: Duration,
) -> Result<Box<dyn Stream>, Error> {
    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, StreamOwned};
    use std::sync::Arc;

    let config = client_config(&opts.verify)?;
    let name = opts.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Error::Tls(format!("server name {name:?}: {e}")))?;
    let mut conn = ClientConnection::new(Arc::new(config), server_name).map_err(tls_err)?;
    // Finish the handshake here so certificate problems surface at connect time.
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Error::Timeout(io_timeout)
            }
            std::io::ErrorKind::UnexpectedEof => Error::Tls("closed during handshake".into()),
            _ => Error::Tls(e.to_string()),
        })?;
    }
    Ok(Box::new(StreamOwned::new(conn, tcp)))
}

#[cfg(feature = "routeros-tls")]
fn tls_err(e: rustls::Error) -> Error {
    Error::Tls(e.to_string())
}

#[cfg(feature = "routeros-tls")]
fn client_config(verify: &TlsVerify) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use rustls::{ClientConfig, RootCertStore};
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    Ok(match verify {
        TlsVerify::AcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth(),
        TlsVerify::CaPem(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::Tls(format!("CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::Tls("CA PEM holds no certificate".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    })
}

/// Accepts any certificate (MikroTik's default is self-signed) but still checks
/// the handshake signatures, so the peer must hold the certificate's key.
#[cfg(feature = "routeros-tls")]
#[derive(Debug)]
struct AcceptAnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

#[cfg(feature = "routeros-tls")]
impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
