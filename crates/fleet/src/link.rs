//! How a node reaches the database: the parsed URL, the TLS policy, timeouts, and the
//! classification of connection errors into the variants an operator can act on.
//!
//! TLS is verified or absent, never opportunistic: a URL with `sslmode=disable` connects in
//! plain text (a test database on loopback), any other `sslmode` (including the default,
//! `prefer`) is raised to `require` and the server's certificate is verified against the
//! cluster's CA file, or the system's roots when there is none. A downgrade to plain text by
//! someone on the path is therefore a TLS error, not a silent fallback.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{FleetError, FleetSettings};

/// The connection future's type with our TLS connector.
pub(crate) type Connection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Everything needed to open a connection, shared by the handle and its listener.
#[derive(Clone)]
pub(crate) struct Link {
    config: Config,
    tls: MakeRustlsConnect,
    pub(crate) target: String,
    user: String,
    pub(crate) operation_timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("target", &self.target)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(settings: &FleetSettings) -> Result<Self, FleetError> {
        let mut config = Config::from_str(&settings.url).map_err(FleetError::InvalidUrl)?;
        let host = config
            .get_hosts()
            .iter()
            .find_map(|host| match host {
                Host::Tcp(name) => Some(name.clone()),
                #[cfg(unix)]
                Host::Unix(_) => None,
            })
            .ok_or(FleetError::NoHost)?;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if let Some(password) = &settings.password {
            config.password(password.expose());
        }
        if config.get_ssl_mode() != SslMode::Disable {
            config.ssl_mode(SslMode::Require);
        }
        config.connect_timeout(settings.connect_timeout);
        // Notice a database that vanished without closing the connection (a partition, a
        // powered-off host) within about half a minute rather than the kernel's two hours.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        let user = config.get_user().unwrap_or_default().to_owned();
        let tls = MakeRustlsConnect::new(client_config(settings)?);
        Ok(Self {
            config,
            tls,
            target,
            user,
            operation_timeout: settings.operation_timeout,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// Connect, bounded by the connect timeout, and hand back the connection future undriven.
    pub(crate) async fn connect_raw(&self) -> Result<(Client, Connection), FleetError> {
        let connect = self.config.connect(self.tls.clone());
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(error)) => Err(self.classify(error, "accept the connection")),
            Err(_) => Err(FleetError::TimedOut {
                target: self.target.clone(),
                after: self.connect_timeout,
            }),
        }
    }

    /// Connect and drive the connection on a task that ends with the returned [`Conn`].
    pub(crate) async fn open(&self) -> Result<Conn, FleetError> {
        let (client, connection) = self.connect_raw().await?;
        let target = self.target.clone();
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(target_db = %target, %error, "fleet database connection ended");
            }
        });
        Ok(Conn { client, driver })
    }

    /// Map a driver error to what the operator can act on.
    pub(crate) fn classify(
        &self,
        error: tokio_postgres::Error,
        action: &'static str,
    ) -> FleetError {
        let target = self.target.clone();
        if let Some(code) = error.code() {
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                return FleetError::Authentication {
                    target,
                    user: self.user.clone(),
                    source: error,
                };
            }
            if *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::CONNECTION_FAILURE
                || *code == SqlState::TOO_MANY_CONNECTIONS
            {
                return FleetError::Unreachable {
                    target,
                    source: error,
                };
            }
            return FleetError::Database {
                action,
                source: error,
            };
        }
        // tokio-postgres keeps its error kinds private; its display of the kind is stable.
        let kind = error.to_string();
        if kind.starts_with("error performing TLS handshake") || has_rustls_source(&error) {
            return FleetError::Tls {
                target,
                source: error,
            };
        }
        if error.is_closed()
            || kind.starts_with("error connecting to server")
            || kind.starts_with("error communicating with the server")
            || kind.starts_with("timeout waiting for server")
        {
            return FleetError::Unreachable {
                target,
                source: error,
            };
        }
        FleetError::Database {
            action,
            source: error,
        }
    }
}

fn has_rustls_source(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        if current.is::<rustls::Error>() {
            return true;
        }
        let io_inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(inner) = io_inner
            && inner.is::<rustls::Error>()
        {
            return true;
        }
        source = current.source();
    }
    false
}

fn client_config(settings: &FleetSettings) -> Result<rustls::ClientConfig, FleetError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = &settings.ca_file {
        let ca_error = |reason: String| FleetError::CaFile {
            path: path.clone(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|error| ca_error(error.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ca_error(error.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in it".to_owned()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|error| ca_error(error.to_string()))?;
        }
    } else {
        // Without a CA file the system's roots decide (a managed database with a public CA).
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| FleetError::CaFile {
            path: settings.ca_file.clone().unwrap_or_default(),
            reason: error.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A client and the task driving its connection; dropping it closes the connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) client: Client,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
