//! Webhook targets against a real HTTP receiver (hyper on port 0): the JSON and Slack bodies
//! field by field, the bearer token, a 500, a receiver that hangs, one that is down; a slow
//! target that does not delay another.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_core::notify::{EventSet, NotifySpec, NotifyTarget, WebhookFormat, WebhookTarget};
use certkeeper_core::{Event, Secret};
use certkeeper_notify::{Dispatcher, Notice, NotifyError, Outbox};
use support::{Behaviour, Receiver, WallClock, eventually, free_port, secret};
use tokio_util::sync::CancellationToken;

/// The part of a Slack-style URL that is the credential.
const URL_SECRET: &str = "T0001/B0002/XyZsecretPath";

fn webhook(name: &str, url: &str, format: WebhookFormat, token: Option<Secret>) -> NotifySpec {
    NotifySpec {
        name: name.to_owned(),
        events: EventSet::of(&[Event::Failed, Event::Expiring]),
        timeout: Duration::from_secs(2),
        target: NotifyTarget::Webhook(WebhookTarget {
            url: url.parse().expect("url"),
            token,
            format,
            root_ca_file: None,
        }),
    }
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn expiring_notice() -> Notice {
    let mut notice = Notice::new(Event::Expiring, "testhost", at(1_768_996_400));
    notice.certificate = Some("www".to_owned());
    notice.domains = vec!["www.example.com".to_owned()];
    notice.ca = Some("letsencrypt".to_owned());
    notice.error = Some("HTTP-01 for www.example.com: connection refused".to_owned());
    notice.not_after = Some(at(1_769_860_800));
    notice.next_attempt = Some(at(1_769_000_000));
    notice
}

fn dispatcher(specs: &[NotifySpec]) -> (Dispatcher, Outbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("outbox")).expect("outbox");
    let dispatcher = Dispatcher::new(specs, outbox.clone(), "testhost", Arc::new(WallClock))
        .expect("dispatcher");
    (dispatcher, outbox, dir)
}

#[tokio::test]
async fn json_webhook_gets_every_field_and_the_token() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let spec = webhook(
        "alerting",
        &receiver.url("/hooks/certkeeper"),
        WebhookFormat::Json,
        Some(secret("t0ken-42")),
    );
    let (dispatcher, outbox, _dir) = dispatcher(&[spec]);
    dispatcher.notify(&expiring_notice()).expect("queued");
    let deliveries = dispatcher.deliver_due().await;
    assert!(
        deliveries.iter().all(|d| d.result.is_ok()),
        "{deliveries:?}"
    );

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.path, "/hooks/certkeeper");
    assert_eq!(hit.authorization.as_deref(), Some("Bearer t0ken-42"));
    assert_eq!(hit.content_type.as_deref(), Some("application/json"));
    let body = &hit.body;
    assert_eq!(body["event"], "expiring");
    assert_eq!(body["certificate"], "www");
    assert_eq!(body["domains"], serde_json::json!(["www.example.com"]));
    assert_eq!(body["ca"], "letsencrypt");
    assert_eq!(
        body["error"],
        "HTTP-01 for www.example.com: connection refused"
    );
    assert_eq!(body["not_after"], "2026-01-31T12:00:00Z");
    assert_eq!(body["next_attempt"], "2026-01-21T12:53:20Z");
    assert_eq!(body["host"], "testhost");
    assert_eq!(body["time"], "2026-01-21T11:53:20Z");
    assert_eq!(
        body["summary"],
        "certificate www: expires soon and is not renewed (on testhost)"
    );
    assert_eq!(
        body.as_object().map(serde_json::Map::len),
        Some(10),
        "{body}"
    );
    assert!(outbox.pending().expect("pending").is_empty());
}

#[tokio::test]
async fn slack_webhook_gets_text_only() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let spec = webhook(
        "slack",
        &receiver.url(&format!("/services/{URL_SECRET}")),
        WebhookFormat::Slack,
        None,
    );
    let (dispatcher, _outbox, _dir) = dispatcher(&[spec]);
    dispatcher.notify(&expiring_notice()).expect("queued");
    let deliveries = dispatcher.deliver_due().await;
    assert!(
        deliveries.iter().all(|d| d.result.is_ok()),
        "{deliveries:?}"
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].authorization, None);
    let body = hits[0].body.as_object().expect("an object");
    assert_eq!(body.keys().collect::<Vec<_>>(), ["text"]);
    let text = body["text"].as_str().expect("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "*certificate www: expires soon and is not renewed (on testhost)*"
    );
    for line in [
        "Event: expiring",
        "Certificate: www",
        "Domains: www.example.com",
        "CA: letsencrypt",
        "Error: HTTP-01 for www.example.com: connection refused",
        "Expires: 2026-01-31T12:00:00Z",
        "Next attempt: 2026-01-21T12:53:20Z",
        "Host: testhost",
    ] {
        assert!(lines.contains(&line), "{line:?} in {text}");
    }
}

#[tokio::test]
async fn events_a_target_does_not_want_are_not_queued() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let spec = webhook("alerting", &receiver.url("/"), WebhookFormat::Json, None);
    let (dispatcher, outbox, _dir) = dispatcher(&[spec]);
    let renewed = Notice::new(Event::Renewed, "testhost", at(0));
    assert!(
        dispatcher
            .notify(&renewed)
            .expect("nothing queued")
            .is_empty()
    );
    assert!(outbox.pending().expect("pending").is_empty());
    // A test notice reaches every target.
    dispatcher
        .send_now("alerting", &Notice::test("testhost", at(0)))
        .await
        .expect("test notice");
    assert_eq!(receiver.hits()[0].body["event"], "test");
    let unknown = dispatcher
        .send_now("pager", &Notice::test("testhost", at(0)))
        .await
        .expect_err("unknown target");
    assert_eq!(
        unknown.to_string(),
        "no notify target named \"pager\"; configured targets: alerting"
    );
}

#[tokio::test]
async fn an_error_status_is_named_and_the_notice_stays() {
    let receiver = Receiver::start(Behaviour::Status(500)).await;
    let spec = webhook(
        "slack",
        &receiver.url(&format!("/services/{URL_SECRET}")),
        WebhookFormat::Slack,
        Some(secret("t0ken-42")),
    );
    let (dispatcher, outbox, _dir) = dispatcher(&[spec]);
    dispatcher.notify(&expiring_notice()).expect("queued");
    let mut deliveries = dispatcher.deliver_due().await;
    let error = deliveries.remove(0).result.expect_err("500");
    assert!(
        matches!(error, NotifyError::HttpStatus { status: 500, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "notify target slack: http://{}:{} answered HTTP 500: the receiver says: broken pipe in the back office",
            receiver.address.ip(),
            receiver.address.port()
        )
    );
    for shown in [message, format!("{error:?}")] {
        assert!(
            !shown.contains(URL_SECRET),
            "the URL's secret path leaked: {shown}"
        );
        assert!(!shown.contains("t0ken-42"), "the token leaked: {shown}");
    }
    let pending = outbox.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    // Backed off: not due again at once.
    assert!(dispatcher.deliver_due().await.is_empty());
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out() {
    let receiver = Receiver::start(Behaviour::Hang).await;
    let spec = webhook("slow", &receiver.url("/"), WebhookFormat::Json, None);
    let (dispatcher, outbox, _dir) = dispatcher(&[spec]);
    dispatcher.notify(&expiring_notice()).expect("queued");
    let started = std::time::Instant::now();
    let mut deliveries = dispatcher.deliver_due().await;
    let error = deliveries.remove(0).result.expect_err("hangs");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        error
            .to_string()
            .starts_with("notify target slow: no answer within 2s;"),
        "{error}"
    );
    assert_eq!(outbox.pending().expect("pending").len(), 1);
}

#[tokio::test]
async fn a_receiver_that_is_down_is_a_connection_error() {
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let spec = webhook("down", &url, WebhookFormat::Json, None);
    let (dispatcher, outbox, _dir) = dispatcher(&[spec]);
    dispatcher.notify(&expiring_notice()).expect("queued");
    let mut deliveries = dispatcher.deliver_due().await;
    let error = deliveries.remove(0).result.expect_err("down");
    assert!(matches!(error, NotifyError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("notify target down: cannot connect to http://127.0.0.1:"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert_eq!(outbox.pending().expect("pending").len(), 1);
}

#[tokio::test]
async fn a_slow_target_does_not_delay_another() {
    let slow = Receiver::start(Behaviour::Hang).await;
    let fast = Receiver::start(Behaviour::Accept).await;
    let mut slow_spec = webhook("slow", &slow.url("/"), WebhookFormat::Json, None);
    slow_spec.timeout = Duration::from_secs(30);
    let fast_spec = webhook("fast", &fast.url("/"), WebhookFormat::Json, None);
    let (dispatcher, outbox, _dir) = dispatcher(&[slow_spec, fast_spec]);
    let cancel = CancellationToken::new();
    let run = dispatcher.run(cancel.clone());
    let test = async {
        // Queued while the loops run: both are woken.
        let started = std::time::Instant::now();
        assert_eq!(
            dispatcher.notify(&expiring_notice()).expect("queued").len(),
            2
        );
        let mut second = expiring_notice();
        second.certificate = Some("api".to_owned());
        dispatcher.notify(&second).expect("queued");
        assert!(
            eventually(Duration::from_secs(5), || fast.hits().len() == 2).await,
            "the fast target got {:?}",
            fast.hits()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The slow one is still on its first notice; both of its notices wait in the outbox.
        assert!(eventually(Duration::from_secs(2), || slow.hits().len() == 1).await);
        assert_eq!(outbox.pending_for("slow").expect("pending").len(), 2);
        assert!(outbox.pending_for("fast").expect("pending").is_empty());
        cancel.cancel();
    };
    let ((), ()) = tokio::join!(run, test);
    // Cancelled in flight: nothing was lost.
    assert_eq!(outbox.pending_for("slow").expect("pending").len(), 2);
}
