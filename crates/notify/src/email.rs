//! `type = "email"`: a plain-text message over SMTP (lettre, rustls) or piped to a local
//! sendmail.
//!
//! SMTP: `tls = "starttls"` requires STARTTLS (a server that does not offer it is an error,
//! never a silent downgrade), `"implicit"` speaks TLS from the first byte, `"none"` sends in
//! the clear. The server's certificate is checked against the system roots plus
//! `root_ca_file`. With a `username`, AUTH PLAIN or LOGIN, whichever the server offers. A
//! connection is made per message: notices are rare, and a pool would only hold sockets.
//!
//! sendmail: `PATH -i -f FROM -- TO...` with the message on its standard input, as every MTA's
//! sendmail takes it; an exit status other than 0 is a refusal, and its standard error says
//! why.

use std::path::PathBuf;
use std::process::Stdio;

use certkeeper_core::notify::{EmailTarget, EmailTransport, SmtpSpec, SmtpTls};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::AsyncWriteExt;

use crate::webhook::read_pem_certificates;
use crate::{Notice, NotifyError, is_tls, root_cause};

/// SMTP reply codes that refuse a login (RFC 4954 section 6).
const AUTH_REFUSED: [u16; 4] = [530, 534, 535, 538];
/// How much of sendmail's standard error is kept for the error message.
const STDERR_EXCERPT: usize = 300;

/// An e-mail target, ready to send.
pub(crate) struct EmailSender {
    from: Mailbox,
    to: Vec<Mailbox>,
    via: Via,
}

enum Via {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        /// `host:port`, for messages.
        address: String,
        username: Option<String>,
    },
    Sendmail(PathBuf),
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let via = match &self.via {
            Via::Smtp { address, .. } => address.clone(),
            Via::Sendmail(path) => path.display().to_string(),
        };
        f.debug_struct("EmailSender")
            .field("to", &self.to.len())
            .field("via", &via)
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    /// `host` is this host's name, for EHLO.
    pub(crate) fn new(name: &str, spec: &EmailTarget, host: &str) -> Result<Self, NotifyError> {
        let setup = |reason: String| NotifyError::Setup {
            target: name.to_owned(),
            reason,
        };
        let mailbox = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|err| setup(format!("invalid address {text:?}: {err}")))
        };
        let from = mailbox(&spec.from)?;
        let to = spec
            .to
            .iter()
            .map(|text| mailbox(text))
            .collect::<Result<Vec<_>, _>>()?;
        let via = match &spec.transport {
            EmailTransport::Smtp(smtp) => smtp_transport(smtp, host).map_err(setup)?,
            EmailTransport::Sendmail { path } => Via::Sendmail(path.clone()),
        };
        Ok(Self { from, to, via })
    }

    pub(crate) async fn send(&self, name: &str, notice: &Notice) -> Result<(), NotifyError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(notice.email_subject())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(notice.email_body())
            .map_err(|err| NotifyError::Setup {
                target: name.to_owned(),
                reason: format!("cannot build the message: {err}"),
            })?;
        match &self.via {
            Via::Smtp {
                transport,
                address,
                username,
            } => transport
                .send(message)
                .await
                .map(drop)
                .map_err(|err| smtp_error(name, address, username.as_deref(), &err)),
            Via::Sendmail(path) => self.sendmail(name, path, &message).await,
        }
    }

    async fn sendmail(
        &self,
        name: &str,
        path: &PathBuf,
        message: &Message,
    ) -> Result<(), NotifyError> {
        let refused = |reason: String| NotifyError::Mail {
            target: name.to_owned(),
            address: path.display().to_string(),
            reason,
        };
        let mut child = tokio::process::Command::new(path)
            .arg("-i")
            .arg("-f")
            .arg(&self.from.email)
            .arg("--")
            .args(self.to.iter().map(|to| &to.email))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| refused(format!("cannot start it: {err}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&message.formatted())
                .await
                .map_err(|err| refused(format!("cannot write the message to it: {err}")))?;
            // Dropping stdin closes it: the end of the message.
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|err| refused(format!("cannot wait for it: {err}")))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let excerpt: String = stderr.trim().chars().take(STDERR_EXCERPT).collect();
        Err(refused(format!(
            "it exited with {}: {excerpt}",
            output.status
        )))
    }
}

fn smtp_transport(spec: &SmtpSpec, host: &str) -> Result<Via, String> {
    let tls = if spec.tls == SmtpTls::None {
        Tls::None
    } else {
        let mut builder = TlsParameters::builder(spec.host.clone());
        if let Some(path) = &spec.root_ca_file {
            for der in read_pem_certificates(path)? {
                let cert = Certificate::from_der(der.to_vec())
                    .map_err(|err| format!("cannot use root_ca_file {}: {err}", path.display()))?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let parameters = builder.build_rustls().map_err(|err| err.to_string())?;
        if spec.tls == SmtpTls::Implicit {
            Tls::Wrapper(parameters)
        } else {
            Tls::Required(parameters)
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(spec.host.clone())
        .port(spec.port)
        .tls(tls)
        .hello_name(ClientId::Domain(host.to_owned()))
        // The dispatcher's timeout covers the whole exchange; this one each command.
        .timeout(None);
    let mut username = None;
    if let Some(credentials) = &spec.credentials {
        let password = String::from_utf8_lossy(credentials.password.expose()).into_owned();
        builder = builder
            .credentials(Credentials::new(credentials.username.clone(), password))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        username = Some(credentials.username.clone());
    }
    let address = if spec.host.contains(':') {
        format!("[{}]:{}", spec.host, spec.port)
    } else {
        format!("{}:{}", spec.host, spec.port)
    };
    Ok(Via::Smtp {
        transport: Box::new(builder.build()),
        address,
        username,
    })
}

fn smtp_error(
    name: &str,
    address: &str,
    username: Option<&str>,
    err: &lettre::transport::smtp::Error,
) -> NotifyError {
    let target = name.to_owned();
    let address = address.to_owned();
    let code = err.status().map(u16::from);
    if let (Some(code), Some(username)) = (code, username)
        && AUTH_REFUSED.contains(&code)
    {
        return NotifyError::AuthRefused {
            target,
            address,
            username: username.to_owned(),
            reason: err.to_string(),
        };
    }
    if err.is_tls() || is_tls(err) {
        return NotifyError::Tls {
            target,
            address,
            reason: root_cause(err),
        };
    }
    if code.is_none() && has_io_error(err) {
        return NotifyError::Connect {
            target,
            address,
            reason: root_cause(err),
        };
    }
    NotifyError::Mail {
        target,
        address,
        reason: err.to_string(),
    }
}

/// Whether an I/O error (refused, reset, unreachable) is in the chain.
fn has_io_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<std::io::Error>() {
            return true;
        }
        current = error.source();
    }
    false
}
