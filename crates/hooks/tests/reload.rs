//! Reload coalescing with real processes: many requests, one run per target per batch.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::ReloadTarget;
use certkeeper_hooks::ReloadCoalescer;
use support::shell;
use tokio::sync::oneshot;

const QUIET: Duration = Duration::from_millis(100);

/// A target that appends `$CERTKEEPER_RENEWED` to `NAME.log` in `dir` each time it runs.
fn target(dir: &Path, name: &str) -> ReloadTarget {
    let log = dir.join(format!("{name}.log"));
    ReloadTarget {
        name: name.to_owned(),
        hook: shell(
            &format!("echo \"$CERTKEEPER_RENEWED\" >> '{}'", log.display()),
            Duration::from_secs(10),
        ),
    }
}

fn runs(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn ten_requests_run_each_target_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coalescer = ReloadCoalescer::new(
        vec![target(dir.path(), "nginx"), target(dir.path(), "postfix")],
        QUIET,
    );
    for i in 0..10 {
        coalescer
            .request(&format!("site{i}"), &["nginx"])
            .expect("known");
    }
    coalescer
        .request("mail", &["postfix", "nginx"])
        .expect("known");
    let outcomes = coalescer.quiet_batch().await.run().await;
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(certkeeper_hooks::ReloadOutcome::succeeded),
        "{outcomes:?}"
    );
    let sites: Vec<String> = (0..10).map(|i| format!("site{i}")).collect();
    assert_eq!(
        runs(dir.path(), "nginx"),
        [format!("{} mail", sites.join(" "))]
    );
    assert_eq!(runs(dir.path(), "postfix"), ["mail"]);
}

#[tokio::test]
async fn serve_runs_batches_and_flushes_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coalescer = Arc::new(ReloadCoalescer::new(
        vec![target(dir.path(), "nginx")],
        QUIET,
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn({
        let coalescer = Arc::clone(&coalescer);
        async move {
            coalescer
                .serve(async {
                    let _ = stopped.await;
                })
                .await;
        }
    });

    coalescer.request("www", &["nginx"]).expect("known");
    coalescer.request("api", &["nginx"]).expect("known");
    for _ in 0..200 {
        if !runs(dir.path(), "nginx").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs(dir.path(), "nginx"), ["www api"]);

    // Requested just before the stop: run by the flush on shutdown (or by a batch that
    // became due first), exactly once either way.
    coalescer.request("mail", &["nginx"]).expect("known");
    stop.send(()).expect("serve is running");
    serving.await.expect("serve finished");
    assert_eq!(runs(dir.path(), "nginx"), ["www api", "mail"]);
    assert!(coalescer.pending().is_empty());
}

#[tokio::test]
async fn flush_runs_without_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coalescer =
        ReloadCoalescer::new(vec![target(dir.path(), "nginx")], Duration::from_secs(3600));
    assert!(coalescer.flush().await.is_empty(), "nothing pending");
    coalescer.request("www", &["nginx"]).expect("known");
    let outcomes = tokio::time::timeout(Duration::from_secs(10), coalescer.flush())
        .await
        .expect("flush does not wait for the quiet period");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].target, "nginx");
    assert_eq!(outcomes[0].certificates, ["www"]);
    assert_eq!(runs(dir.path(), "nginx"), ["www"]);
}
