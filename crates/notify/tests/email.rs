//! E-mail targets against a real SMTP server (aiosmtpd) with STARTTLS, implicit TLS and none,
//! AUTH, a refused login, an untrusted certificate, a server that is down; and sendmail.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_core::Event;
use certkeeper_core::notify::{
    EmailTarget, EmailTransport, EventSet, NotifySpec, NotifyTarget, SmtpCredentials, SmtpSpec,
    SmtpTls,
};
use certkeeper_notify::{Dispatcher, Notice, NotifyError, Outbox};
use support::{SmtpServer, WallClock, free_port, secret};

const PASSWORD: &str = "correct-horse-battery";

fn email_spec(transport: EmailTransport) -> NotifySpec {
    NotifySpec {
        name: "ops-mail".to_owned(),
        events: EventSet::default(),
        timeout: Duration::from_secs(20),
        target: NotifyTarget::Email(EmailTarget {
            transport,
            from: "certkeeper <certkeeper@example.com>".to_owned(),
            to: vec!["ops@example.com".to_owned(), "pki@example.com".to_owned()],
        }),
    }
}

fn smtp(port: u16, tls: SmtpTls, login: Option<&str>, ca: Option<PathBuf>) -> EmailTransport {
    EmailTransport::Smtp(SmtpSpec {
        host: "localhost".to_owned(),
        port,
        tls,
        credentials: login.map(|password| SmtpCredentials {
            username: "certkeeper".to_owned(),
            password: secret(password),
        }),
        root_ca_file: ca,
    })
}

fn failed_notice() -> Notice {
    let mut notice = Notice::new(Event::Failed, "testhost", SystemTime::now());
    notice.certificate = Some("www".to_owned());
    notice.domains = vec!["www.example.com".to_owned(), "example.com".to_owned()];
    notice.ca = Some("letsencrypt".to_owned());
    notice.error = Some("the CA refused the order: rateLimited".to_owned());
    notice
}

/// Queue the failed notice for `spec` and deliver it once; the outbox stays for inspection.
async fn deliver(spec: NotifySpec) -> (Result<(), NotifyError>, Outbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("outbox")).expect("outbox");
    let dispatcher = Dispatcher::new(&[spec], outbox.clone(), "testhost", Arc::new(WallClock))
        .expect("dispatcher");
    assert_eq!(
        dispatcher.notify(&failed_notice()).expect("queued").len(),
        1
    );
    let mut deliveries = dispatcher.deliver_due().await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    (deliveries.remove(0).result, outbox, dir)
}

fn assert_delivered_message(server: &SmtpServer, login: Option<&str>, tls: bool) {
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let message = &received[0];
    assert_eq!(message.mail_from, "certkeeper@example.com");
    assert_eq!(message.rcpt_tos, ["ops@example.com", "pki@example.com"]);
    assert_eq!(message.login.as_deref(), login);
    assert_eq!(message.tls, tls);
    let data = &message.data;
    for expected in [
        "Subject: [certkeeper] www: failed (testhost)",
        "From: certkeeper <certkeeper@example.com>",
        "Content-Type: text/plain",
        "certificate www: renewal failed, a human must act (on testhost).",
        "Domains: www.example.com, example.com",
        "Error: the CA refused the order: rateLimited",
    ] {
        assert!(data.contains(expected), "{expected:?} in:\n{data}");
    }
}

#[tokio::test]
async fn starttls_with_login_delivers_and_empties_the_outbox() {
    let server = SmtpServer::start("starttls", Some(("certkeeper", PASSWORD)));
    let spec = email_spec(smtp(
        server.port,
        SmtpTls::Starttls,
        Some(PASSWORD),
        Some(server.ca_file.clone()),
    ));
    let (result, outbox, _dir) = deliver(spec).await;
    result.expect("delivered");
    assert_delivered_message(&server, Some("certkeeper"), true);
    assert!(outbox.pending().expect("pending").is_empty());
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let server = SmtpServer::start("implicit", None);
    let spec = email_spec(smtp(
        server.port,
        SmtpTls::Implicit,
        None,
        Some(server.ca_file.clone()),
    ));
    let (result, _, _dir) = deliver(spec).await;
    result.expect("delivered");
    assert_delivered_message(&server, None, true);
}

#[tokio::test]
async fn plain_smtp_delivers_with_a_login() {
    let server = SmtpServer::start("none", Some(("certkeeper", PASSWORD)));
    let spec = email_spec(smtp(server.port, SmtpTls::None, Some(PASSWORD), None));
    let (result, _, _dir) = deliver(spec).await;
    result.expect("delivered");
    assert_delivered_message(&server, Some("certkeeper"), false);
}

#[tokio::test]
async fn a_refused_login_is_named_and_the_notice_stays() {
    let server = SmtpServer::start("starttls", Some(("certkeeper", PASSWORD)));
    let wrong = "wrong-password-7x9";
    let spec = email_spec(smtp(
        server.port,
        SmtpTls::Starttls,
        Some(wrong),
        Some(server.ca_file.clone()),
    ));
    let (result, outbox, _dir) = deliver(spec).await;
    let error = result.expect_err("login refused");
    assert!(
        matches!(&error, NotifyError::AuthRefused { username, .. } if username == "certkeeper"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("notify target ops-mail: localhost:"),
        "{message}"
    );
    assert!(
        message.contains("refused the login of \"certkeeper\""),
        "{message}"
    );
    assert!(message.contains("535"), "{message}");
    for shown in [message, format!("{error:?}")] {
        assert!(!shown.contains(wrong), "the password leaked: {shown}");
    }
    assert!(server.received().is_empty());
    let pending = outbox.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    assert!(
        !pending[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains(wrong)
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let server = SmtpServer::start("starttls", None);
    // No root_ca_file: the test CA is not in the system store.
    let spec = email_spec(smtp(server.port, SmtpTls::Starttls, None, None));
    let (result, outbox, _dir) = deliver(spec).await;
    let error = result.expect_err("untrusted");
    assert!(matches!(error, NotifyError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("TLS with localhost:"), "{error}");
    assert_eq!(outbox.pending().expect("pending").len(), 1);
}

#[tokio::test]
async fn a_server_that_is_down_is_a_connection_error() {
    let spec = email_spec(smtp(free_port(), SmtpTls::Starttls, None, None));
    let (result, outbox, _dir) = deliver(spec).await;
    let error = result.expect_err("nobody listens");
    assert!(matches!(error, NotifyError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("cannot connect to localhost:"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert_eq!(outbox.pending().expect("pending").len(), 1);
}

/// A sendmail that records its arguments and the message, exiting with `status`.
fn fake_sendmail(dir: &std::path::Path, status: u8) -> PathBuf {
    let path = dir.join("sendmail");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{dir}/args'\ncat > '{dir}/message'\necho 'sendmail: queue full' >&2\nexit {status}\n",
            dir = dir.display()
        ),
    )
    .expect("write sendmail");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn sendmail_gets_the_envelope_and_the_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake_sendmail(dir.path(), 0);
    let (result, outbox, _outbox_dir) =
        deliver(email_spec(EmailTransport::Sendmail { path })).await;
    result.expect("delivered");
    let args = std::fs::read_to_string(dir.path().join("args")).expect("args");
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "-i",
            "-f",
            "certkeeper@example.com",
            "--",
            "ops@example.com",
            "pki@example.com"
        ]
    );
    let message = std::fs::read_to_string(dir.path().join("message")).expect("message");
    assert!(
        message.contains("Subject: [certkeeper] www: failed (testhost)"),
        "{message}"
    );
    assert!(outbox.pending().expect("pending").is_empty());
}

#[tokio::test]
async fn a_failing_sendmail_is_reported_with_its_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fake_sendmail(dir.path(), 75);
    let (result, outbox, _outbox_dir) =
        deliver(email_spec(EmailTransport::Sendmail { path })).await;
    let error = result.expect_err("exit 75");
    let message = error.to_string();
    assert!(message.contains("exit status: 75"), "{message}");
    assert!(message.contains("sendmail: queue full"), "{message}");
    assert_eq!(outbox.pending().expect("pending").len(), 1);
}
