//! API-SSL: the client through a test-only TLS terminator in front of the double.
#![cfg(feature = "routeros-tls")]
mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rlm_rust::routeros::double::{DoubleConfig, RouterOsDouble};
use rlm_rust::routeros::{Client, ConnectOptions, Error, SessionTable, TlsOptions, TlsVerify};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

// Self-signed test certificate (CN=localhost, SAN localhost and 127.0.0.1,
// valid until 2126), generated with openssl for these tests only.
const CERT_PEM: &str = r"-----BEGIN CERTIFICATE-----
MIIBvzCCAWWgAwIBAgIUBWSlDjrP3qqjcjmI68lBK4KzFoAwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMTA5MTIwNVoYDzIxMjYxMDI4
MDkxMjA1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATNZ5ukvuUjFLAJpE3Svq0T1NGZiukn5/l9QEbfppVB918XGo9L8xPy
MwfVZLgl/d89rgvSJAY1cGi3k5i4eRgKo4GSMIGPMB0GA1UdDgQWBBSm/teOrw47
UUpZo/VdHzoP/6adljAfBgNVHSMEGDAWgBSm/teOrw47UUpZo/VdHzoP/6adljAa
BgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwDAYDVR0TAQH/BAIwADAOBgNVHQ8B
Af8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwCgYIKoZIzj0EAwIDSAAwRQIg
BAJouWyLtKsFoZrhmAJ6eFKmMXW28VPKDgU8mtdlNaoCIQD234v784qX5OGsawV/
Z+/mZ7SEoHc558+ei3d9zpTMsA==
-----END CERTIFICATE-----
";
const KEY_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgc5nGis1Onp3fDqzz
3i8JykDOufqPTyf4/PzOUJs7XnahRANCAATNZ5ukvuUjFLAJpE3Svq0T1NGZiukn
5/l9QEbfppVB918XGo9L8xPyMwfVZLgl/d89rgvSJAY1cGi3k5i4eRgK
-----END PRIVATE KEY-----
";
// Another self-signed certificate: not the server's issuer.
const OTHER_PEM: &str = r"-----BEGIN CERTIFICATE-----
MIIBkDCCATagAwIBAgIUGwmNUxjeQBfgp3wSoCuer5MpcKkwCgYIKoZIzj0EAwIw
EDEOMAwGA1UEAwwFb3RoZXIwIBcNMjYxMTIxMDkxMjA1WhgPMjEyNjEwMjgwOTEy
MDVaMBAxDjAMBgNVBAMMBW90aGVyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
R0w60tQ7YbBFPvntCpErUj1csPLDcDPR2y89j5ra2hyKnHpmYhBEV7olKtT6YBhg
MvLtiBtjltg9WP/F5bACQ6NsMGowHQYDVR0OBBYEFK01rU/6SGJBKzHgkUCtinJk
9AkgMB8GA1UdIwQYMBaAFK01rU/6SGJBKzHgkUCtinJk9AkgMBoGA1UdEQQTMBGC
CWxvY2FsaG9zdIcEfwAAATAMBgNVHRMBAf8EAjAAMAoGCCqGSM49BAMCA0gAMEUC
IEhNbG+IOt4hulXCZPQqQv4ZHZ6RhR73QiCSM3zImqP5AiEAmFDf4RwstM5kItwa
ZbvCAUdg6KU1+8a1FB8K//mFBwg=
-----END CERTIFICATE-----
";

/// Accepts one TLS connection and relays it to `backend` in plain TCP.
fn tls_terminator(backend: std::net::SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let certs = vec![CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let _ = relay(tcp, backend, Arc::new(config));
    });
    port
}

fn relay(
    tcp: TcpStream,
    backend: std::net::SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    let tick = Some(Duration::from_millis(5));
    tcp.set_read_timeout(tick)?;
    let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut plain = TcpStream::connect(backend)?;
    plain.set_read_timeout(tick)?;
    let mut buf = [0u8; 8192];
    let idle = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => plain.write_all(&buf[..n])?,
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
        match plain.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                tls.flush()?;
            }
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

fn tls_opts(verify: TlsVerify, server_name: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(5),
        tls: Some(TlsOptions {
            verify,
            server_name: server_name.map(str::to_string),
        }),
    }
}

fn session_over_tls(verify: TlsVerify, server_name: Option<&str>) -> Result<usize, Error> {
    let d = RouterOsDouble::start(DoubleConfig::default()).unwrap();
    d.add_session(SessionTable::Ppp, "alice", "100.64.0.2", "1h");
    let port = tls_terminator(d.addr());
    let mut c = Client::connect("127.0.0.1", port, &tls_opts(verify, server_name))?;
    c.login("admin", "secret")?;
    let rows = c.print("/ppp/active", &[], &[])?;
    assert_eq!(d.counters().logins_ok, 1);
    Ok(rows.len())
}

#[test]
fn accept_any_takes_a_self_signed_certificate() {
    assert_eq!(session_over_tls(TlsVerify::AcceptAny, None).unwrap(), 1);
}

#[test]
fn ca_verification_accepts_the_right_issuer_and_name() {
    let ca = TlsVerify::CaPem(CERT_PEM.as_bytes().to_vec());
    assert_eq!(session_over_tls(ca.clone(), None).unwrap(), 1);
    assert_eq!(session_over_tls(ca, Some("localhost")).unwrap(), 1);
}

#[test]
fn ca_verification_refuses_other_issuer_or_name() {
    let err = session_over_tls(TlsVerify::CaPem(OTHER_PEM.as_bytes().to_vec()), None).unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    let err = session_over_tls(
        TlsVerify::CaPem(CERT_PEM.as_bytes().to_vec()),
        Some("router.example"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

#[test]
fn unusable_ca_pem_is_an_error() {
    let err = session_over_tls(TlsVerify::CaPem(b"not a pem".to_vec()), None).unwrap_err();
    assert!(
        matches!(err, Error::Tls(ref m) if m.contains("no certificate")),
        "{err:?}"
    );
}

/// The NAS row's API-SSL settings through the CLI's bulk disconnect: without a CA
/// nothing is sent, a certificate of another issuer is refused before the login
/// (the password never reaches it), the right CA works, and `--api-tls-insecure`
/// is the explicit opt-out that `nas list` flags.
#[test]
fn a_nas_api_ssl_certificate_is_verified_against_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("rlm.sqlite");
    let (right, wrong) = (tmp.path().join("ca.pem"), tmp.path().join("other.pem"));
    std::fs::write(&right, CERT_PEM).unwrap();
    std::fs::write(&wrong, OTHER_PEM).unwrap();
    let cli = |args: &[&str], stdin: &str| {
        let out = common::cli::run(&db, "UTC", args, stdin);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let d = RouterOsDouble::start(DoubleConfig::default()).unwrap();
    d.add_session(SessionTable::Ppp, "old", "100.64.0.2", "10w");
    let port = tls_terminator(d.addr()).to_string();
    let (_, err) = cli(
        &[
            "nas",
            "add",
            "192.0.2.41",
            "--name",
            "tls-nas",
            "--api-host",
            "127.0.0.1",
            "--api-port",
            &port,
            "--api-user",
            "admin",
            "--api-password-stdin",
            "--api-tls",
        ],
        "secret\n",
    );
    assert!(err.is_empty(), "{err}");
    let bulk = || {
        let (out, _) = cli(&["--json", "bulk-disconnect", "--all"], "");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["nases"][0].clone()
    };
    let (list, _) = cli(&["nas", "list"], "");
    assert!(list.contains("tls (no CA: refused)"), "{list}");
    let r = bulk();
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("cannot be verified: no CA"),
        "{r}"
    );

    cli(
        &["nas", "set", "tls-nas", "--api-ca", wrong.to_str().unwrap()],
        "",
    );
    let r = bulk();
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("connect") && e.to_lowercase().contains("certificate"),
        "{r}"
    );
    assert_eq!(
        d.counters().logins_ok + d.counters().logins_failed,
        0,
        "no login reached it"
    );

    let port = tls_terminator(d.addr()).to_string();
    cli(
        &[
            "nas",
            "set",
            "tls-nas",
            "--api-ca",
            right.to_str().unwrap(),
            "--api-port",
            &port,
        ],
        "",
    );
    let (list, _) = cli(&["nas", "list"], "");
    assert!(list.contains("tls (CA)"), "{list}");
    let r = bulk();
    assert_eq!(
        (r["removed"].as_u64(), r["error"].as_str()),
        (Some(1), None),
        "{r}"
    );

    let port = tls_terminator(d.addr()).to_string();
    cli(
        &[
            "nas",
            "set",
            "tls-nas",
            "--api-tls-insecure",
            "--api-ca",
            "",
            "--api-port",
            &port,
        ],
        "",
    );
    let (list, _) = cli(&["--json", "nas", "list"], "");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        (
            v["nas"][0]["api_tls_verify"].as_bool(),
            v["nas"][0]["api_ca_set"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let (list, _) = cli(&["nas", "list"], "");
    assert!(list.contains("tls NOT VERIFIED"), "{list}");
    assert!(bulk()["error"].is_null());
    let (_, err) = cli(
        &[
            "nas",
            "set",
            "tls-nas",
            "--api-ca",
            tmp.path()
                .join("ca.pem")
                .parent()
                .unwrap()
                .to_str()
                .unwrap(),
        ],
        "",
    );
    assert!(err.contains("--api-ca"), "{err}");
    std::fs::write(tmp.path().join("junk.pem"), "not a certificate").unwrap();
    let (_, err) = cli(
        &[
            "nas",
            "set",
            "tls-nas",
            "--api-ca",
            tmp.path().join("junk.pem").to_str().unwrap(),
        ],
        "",
    );
    assert!(err.contains("no PEM certificate"), "{err}");
}
