//! The outbox across a restart (a new Outbox and Dispatcher over the same directory) delivers
//! exactly once, after its backoff; command targets get the notice in their environment.

mod support;

use std::time::{Duration, SystemTime};

use certkeeper_core::notify::{EventSet, NotifySpec, NotifyTarget, WebhookFormat, WebhookTarget};
use certkeeper_core::{Event, Hook, HookCommand};
use certkeeper_notify::{Dispatcher, Notice, NotifyError, Outbox};
use support::{Behaviour, Receiver, TestClock, eventually};
use tokio_util::sync::CancellationToken;

fn webhook(url: &str) -> NotifySpec {
    NotifySpec {
        name: "alerting".to_owned(),
        events: EventSet::default(),
        timeout: Duration::from_secs(5),
        target: NotifyTarget::Webhook(WebhookTarget {
            url: url.parse().expect("url"),
            token: None,
            format: WebhookFormat::Json,
            root_ca_file: None,
        }),
    }
}

fn failed_notice(time: SystemTime) -> Notice {
    let mut notice = Notice::new(Event::Failed, "testhost", time);
    notice.certificate = Some("www".to_owned());
    notice.error = Some("order failed".to_owned());
    notice
}

#[tokio::test]
async fn the_outbox_survives_a_restart_and_delivers_exactly_once() {
    let receiver = Receiver::start(Behaviour::Status(503)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new();
    let spec = webhook(&receiver.url("/hook"));
    {
        let outbox = Outbox::open(dir.path().join("outbox")).expect("outbox");
        let before = Dispatcher::new(
            std::slice::from_ref(&spec),
            outbox,
            "testhost",
            clock.clone(),
        )
        .expect("dispatcher");
        before
            .notify(&failed_notice(clock.now_time()))
            .expect("queued");
        let deliveries = before.deliver_due().await;
        assert!(matches!(
            deliveries[0].result,
            Err(NotifyError::HttpStatus { status: 503, .. })
        ));
        // The "daemon" stops here.
    }
    receiver.behave(Behaviour::Accept);

    let outbox = Outbox::open(dir.path().join("outbox")).expect("reopened");
    let after =
        Dispatcher::new(&[spec], outbox.clone(), "testhost", clock.clone()).expect("dispatcher");
    let pending = outbox.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 503"))
    );

    // Within the first backoff step (a minute) nothing is sent.
    clock.advance(Duration::from_secs(59));
    assert!(after.deliver_due().await.is_empty());
    assert_eq!(receiver.hits().len(), 1);

    clock.advance(Duration::from_secs(1));
    let deliveries = after.deliver_due().await;
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].result.is_ok(), "{deliveries:?}");
    assert!(outbox.pending().expect("pending").is_empty());

    // Later rounds send nothing more: the receiver accepted it exactly once.
    clock.advance(Duration::from_secs(7200));
    assert!(after.deliver_due().await.is_empty());
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2, "one refused, one accepted");
    assert_eq!(hits[1].body["certificate"], "www");
}

#[tokio::test]
async fn the_run_loop_delivers_what_a_previous_run_left() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("outbox")).expect("outbox");
    let clock = TestClock::new();
    // Left by a previous run that was stopped before it sent anything.
    outbox
        .enqueue("alerting", &failed_notice(clock.now_time()))
        .expect("queued");
    let dispatcher = Dispatcher::new(
        &[webhook(&receiver.url("/hook"))],
        outbox.clone(),
        "testhost",
        clock.clone(),
    )
    .expect("dispatcher");
    let cancel = CancellationToken::new();
    let test = async {
        assert!(eventually(Duration::from_secs(5), || receiver.hits().len() == 1).await);
        assert!(
            eventually(Duration::from_secs(2), || outbox
                .pending()
                .is_ok_and(|p| p.is_empty()))
            .await
        );
        cancel.cancel();
    };
    tokio::join!(dispatcher.run(cancel.clone()), test);
    assert_eq!(receiver.hits().len(), 1);
}

fn command(line: &str) -> NotifySpec {
    NotifySpec {
        name: "pager".to_owned(),
        events: EventSet::default(),
        timeout: Duration::from_secs(10),
        target: NotifyTarget::Command(Hook {
            command: HookCommand::Shell(line.to_owned()),
            timeout: Duration::from_secs(10),
        }),
    }
}

#[tokio::test]
async fn command_targets_get_the_notice_in_their_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let line = format!(
        "printf '%s|%s|%s|%s|%s' \"$CERTKEEPER_EVENT\" \"$CERTKEEPER_NAME\" \"$CERTKEEPER_ERROR\" \"$CERTKEEPER_HOST\" \"$CERTKEEPER_MESSAGE\" > '{}'",
        out.display()
    );
    let outbox = Outbox::open(dir.path().join("outbox")).expect("outbox");
    let clock = TestClock::new();
    let dispatcher = Dispatcher::new(&[command(&line)], outbox.clone(), "testhost", clock.clone())
        .expect("dispatcher");
    dispatcher
        .notify(&failed_notice(clock.now_time()))
        .expect("queued");
    let deliveries = dispatcher.deliver_due().await;
    assert!(deliveries[0].result.is_ok(), "{deliveries:?}");
    assert_eq!(
        std::fs::read_to_string(&out).expect("the command ran"),
        "failed|www|order failed|testhost|certificate www: renewal failed, a human must act (on testhost)"
    );
    assert!(outbox.pending().expect("pending").is_empty());
}

#[tokio::test]
async fn a_failing_command_is_named_and_the_notice_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("outbox")).expect("outbox");
    let clock = TestClock::new();
    let dispatcher = Dispatcher::new(
        &[command("echo 'pager service unreachable' >&2; exit 3")],
        outbox.clone(),
        "testhost",
        clock.clone(),
    )
    .expect("dispatcher");
    dispatcher
        .notify(&failed_notice(clock.now_time()))
        .expect("queued");
    let mut deliveries = dispatcher.deliver_due().await;
    let error = deliveries.remove(0).result.expect_err("exit 3");
    assert_eq!(
        error.to_string(),
        "notify target pager: command exited with code 3 (last output: pager service unreachable)"
    );
    assert_eq!(outbox.pending().expect("pending").len(), 1);
}
