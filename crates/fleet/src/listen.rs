//! The notification listener: a task with its own connection that LISTENs on the fleet's
//! channels and turns notifications into [`FleetEvent`]s.
//!
//! LISTEN needs a connection of its own (the shared one is taken by one operation at a time and
//! may be reopened between them). When the connection breaks the task reports
//! [`FleetEvent::Disconnected`], waits (100 ms doubling up to 5 s) and reconnects; every
//! successful subscription is reported as [`FleetEvent::Listening`], the cue to re-read the
//! snapshots because notifications sent while disconnected are lost.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::link::Link;
use crate::{CHALLENGE_CHANNEL, FleetError, VERSION_CHANNEL};

/// What the listener reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum FleetEvent {
    /// Subscribed (at start and after each reconnect): re-read the snapshots now.
    Listening,
    /// The listening connection broke or could not be opened; the listener retries by itself.
    Disconnected(FleetError),
    /// A key authorisation to serve.
    ChallengePublished {
        /// The token.
        token: String,
        /// The body to serve.
        key_authorization: String,
        /// The lineage whose order it belongs to.
        lineage: String,
    },
    /// A key authorisation to stop serving.
    ChallengeWithdrawn {
        /// The token.
        token: String,
    },
    /// A new certificate version to install.
    VersionPublished {
        /// The lineage.
        lineage: String,
        /// The new version.
        version: i64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ChallengeNote {
    Publish {
        token: String,
        key_authorization: String,
        lineage: String,
    },
    Withdraw {
        token: String,
    },
}

#[derive(Serialize, Deserialize)]
struct VersionNote {
    lineage: String,
    version: i64,
}

fn to_json<T: Serialize>(note: &T) -> String {
    // Serialising plain strings and integers cannot fail; an empty payload is ignored anyway.
    serde_json::to_string(note).unwrap_or_default()
}

pub(crate) fn challenge_published_payload(
    token: &str,
    key_authorization: &str,
    lineage: &str,
) -> String {
    to_json(&ChallengeNote::Publish {
        token: token.to_owned(),
        key_authorization: key_authorization.to_owned(),
        lineage: lineage.to_owned(),
    })
}

pub(crate) fn challenge_withdrawn_payload(token: &str) -> String {
    to_json(&ChallengeNote::Withdraw {
        token: token.to_owned(),
    })
}

pub(crate) fn version_payload(lineage: &str, version: i64) -> String {
    to_json(&VersionNote {
        lineage: lineage.to_owned(),
        version,
    })
}

fn parse(channel: &str, payload: &str) -> Option<FleetEvent> {
    match channel {
        CHALLENGE_CHANNEL => match serde_json::from_str(payload).ok()? {
            ChallengeNote::Publish {
                token,
                key_authorization,
                lineage,
            } => Some(FleetEvent::ChallengePublished {
                token,
                key_authorization,
                lineage,
            }),
            ChallengeNote::Withdraw { token } => Some(FleetEvent::ChallengeWithdrawn { token }),
        },
        VERSION_CHANNEL => {
            let note: VersionNote = serde_json::from_str(payload).ok()?;
            Some(FleetEvent::VersionPublished {
                lineage: note.lineage,
                version: note.version,
            })
        }
        _ => None,
    }
}

/// The receiving end of [`Fleet::listen`](crate::Fleet::listen). Dropping it stops the task.
#[derive(Debug)]
pub struct FleetListener {
    events: mpsc::Receiver<FleetEvent>,
    task: JoinHandle<()>,
}

impl FleetListener {
    pub(crate) fn spawn(link: Link, shutdown: CancellationToken) -> Self {
        let (sender, events) = mpsc::channel(256);
        let task = tokio::spawn(run(link, sender, shutdown));
        Self { events, task }
    }

    /// The next event; `None` once the listener stopped (shutdown).
    pub async fn recv(&mut self) -> Option<FleetEvent> {
        self.events.recv().await
    }
}

impl Drop for FleetListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

async fn run(link: Link, sender: mpsc::Sender<FleetEvent>, shutdown: CancellationToken) {
    let mut retry = FIRST_RETRY;
    loop {
        let error = match listen_once(&link, &sender, &shutdown, &mut retry).await {
            Ok(()) => return,
            Err(error) => error,
        };
        tracing::debug!(target_db = %link.target, error = %certkeeper_core::error_chain(&error), "fleet notifications interrupted; reconnecting");
        if sender.send(FleetEvent::Disconnected(error)).await.is_err() {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// One connection's life. `Ok` means stop (shutdown, or nobody receives any more).
async fn listen_once(
    link: &Link,
    sender: &mpsc::Sender<FleetEvent>,
    shutdown: &CancellationToken,
    retry: &mut Duration,
) -> Result<(), FleetError> {
    let (client, mut connection) = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        pair = link.connect_raw() => pair?,
    };
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {CHALLENGE_CHANNEL}; LISTEN {VERSION_CHANNEL}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = &mut subscribe, if !subscribed => {
                result.map_err(|e| link.classify(e, "listen for notifications"))?;
                subscribed = true;
                *retry = FIRST_RETRY;
                FleetEvent::Listening
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    match parse(note.channel(), note.payload()) {
                        Some(event) => event,
                        None => {
                            tracing::debug!(channel = note.channel(), "ignored a notification");
                            continue;
                        }
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(link.classify(error, "listen for notifications")),
                None => return Err(FleetError::Closed { target: link.target.clone() }),
            },
        };
        if sender.send(event).await.is_err() {
            return Ok(());
        }
    }
}
