//! The control socket: while the daemon runs, `certkeeper renew` and `certkeeper revoke` ask it
//! to do the work instead of refusing with exit code 75, and `certkeeper status` asks it which
//! orders are in flight.
//!
//! The protocol is one JSON [`Request`] line from the client, then JSON [`Reply`] lines from
//! the daemon: output lines for the client's stdout or stderr, and last whether the command
//! succeeded ([`Reply::Done`]), from which the client exits with the code it would have had
//! without a daemon. The socket is `control.sock` in the unit's
//! `RuntimeDirectory=` (`$RUNTIME_DIRECTORY`, `/run/certkeeper`), or in the state directory
//! when not run by systemd; mode 0660. The daemon checks every client's credentials
//! (`SO_PEERCRED`): root, the daemon's own user, and members of the daemon's group may talk to
//! it; anybody else is refused before a byte is read. A socket left behind by a crash is
//! replaced at start (the daemon holds the state directory's lock then, so it is no other
//! daemon's).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// The socket's file name.
pub const SOCKET_NAME: &str = "control.sock";
/// Where the packaged unit's `RuntimeDirectory=certkeeper` puts it.
pub const PACKAGED_RUNTIME_DIR: &str = "/run/certkeeper";
/// Requests longer than this are refused (a request is a few names).
const MAX_REQUEST: usize = 64 * 1024;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// `certkeeper renew [NAME...] [--force] [--action A] [--new-key]`.
    Renew {
        names: Vec<String>,
        force: bool,
        /// The lifecycle action override, as spelled on the command line.
        action: Option<String>,
        /// `--new-key` (which renews even when not due). Absent from older clients' requests.
        #[serde(default)]
        new_key: bool,
    },
    /// `certkeeper revoke NAME --reason R`.
    Revoke { name: String, reason: String },
    /// Which orders are in flight (`certkeeper status`).
    InFlight,
}

/// One line of the daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    /// A line for the client's stdout.
    Out(String),
    /// A line for the client's stderr.
    Err(String),
    /// The certificates with an order in flight (answer to [`Request::InFlight`]).
    InFlight(Vec<String>),
    /// The end: whether everything asked for succeeded.
    Done { ok: bool },
    /// The end: the daemon will not do it (not allowed, a bad request, stopping).
    Refused(String),
}

impl Reply {
    fn is_last(&self) -> bool {
        matches!(self, Reply::Done { .. } | Reply::Refused(_))
    }
}

/// A request received by the daemon, with the way back to its client.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub replies: mpsc::UnboundedSender<Reply>,
}

/// Where the daemon listens: `$RUNTIME_DIRECTORY` when systemd set one, else the state
/// directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| {
            // systemd lists several directories separated by ':'; the first is certkeeper's.
            std::env::split_paths(&dirs).next()
        })
        .unwrap_or_else(|| state_dir.to_path_buf())
        .join(SOCKET_NAME)
}

/// Where a client looks, in order: the packaged runtime directory, then the state directory.
pub fn client_paths(state_dir: &Path) -> [PathBuf; 2] {
    [
        Path::new(PACKAGED_RUNTIME_DIR).join(SOCKET_NAME),
        state_dir.join(SOCKET_NAME),
    ]
}

/// Bind the control socket at `path`, replacing a stale one (mode 0660).
///
/// # Errors
/// When the socket cannot be bound, or a live daemon answers on it.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() || meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; remove it", path.display()),
            ));
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another certkeeper answers on {}", path.display()),
                ));
            }
            // Left by a daemon that died: nobody listens.
            std::fs::remove_file(path)?;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Accept clients until `shutdown` resolves, handing each request to `requests`.
pub async fn serve(
    listener: UnixListener,
    requests: mpsc::UnboundedSender<Incoming>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut clients = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let requests = requests.clone();
                    clients.spawn(async move {
                        if let Err(err) = serve_client(stream, requests).await {
                            tracing::debug!(error = %err, "control client ended with an error");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a control connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    clients.abort_all();
    while clients.join_next().await.is_some() {}
}

async fn serve_client(
    stream: UnixStream,
    requests: mpsc::UnboundedSender<Incoming>,
) -> io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    if !allowed(peer.uid(), peer.gid(), peer.pid()) {
        tracing::warn!(
            uid = peer.uid(),
            pid = peer.pid(),
            "control connection refused: not root, not certkeeper's user, not in its group"
        );
        let refusal = Reply::Refused(
            "permission denied: only root, certkeeper's user and members of its group may control the daemon".to_owned(),
        );
        return write_reply(&mut write, &refusal).await;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(err) => {
            return write_reply(&mut write, &Reply::Refused(format!("bad request: {err}"))).await;
        }
    };
    let (replies, mut answers) = mpsc::unbounded_channel();
    if requests.send(Incoming { request, replies }).is_err() {
        let stopping = Reply::Refused("the daemon is stopping".to_owned());
        return write_reply(&mut write, &stopping).await;
    }
    while let Some(reply) = answers.recv().await {
        let last = reply.is_last();
        write_reply(&mut write, &reply).await?;
        if last {
            break;
        }
    }
    write.shutdown().await
}

async fn write_reply(write: &mut (impl AsyncWriteExt + Unpin), reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// Root, the daemon's own user, and members of its group.
fn allowed(uid: u32, gid: u32, pid: Option<i32>) -> bool {
    let own_uid = rustix::process::geteuid().as_raw();
    let own_gid = rustix::process::getegid().as_raw();
    if uid == 0 || uid == own_uid || gid == own_gid {
        return true;
    }
    // Supplementary groups of the client, from the kernel's account of it.
    pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .is_some_and(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Groups:"))
                .is_some_and(|groups| {
                    groups
                        .split_whitespace()
                        .any(|group| group.parse() == Ok(own_gid))
                })
        })
}

/// A client of a running daemon.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connect to the daemon of `state_dir`, if one answers.
    pub async fn connect(state_dir: &Path) -> Option<Client> {
        for path in client_paths(state_dir) {
            if let Some(client) = Client::connect_to(&path).await {
                return Some(client);
            }
        }
        None
    }

    /// Connect to the socket at `path`, if a daemon answers there.
    pub async fn connect_to(path: &Path) -> Option<Client> {
        UnixStream::connect(path)
            .await
            .ok()
            .map(|stream| Client { stream })
    }

    /// Send `request` and hand every reply to `each`; the last one ([`Reply::Done`] or
    /// [`Reply::Refused`]) is returned.
    ///
    /// # Errors
    /// When the connection fails or the daemon stops without a last reply.
    pub async fn request(
        self,
        request: &Request,
        mut each: impl FnMut(Reply),
    ) -> io::Result<Reply> {
        let (read, mut write) = self.stream.into_split();
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Err(err) = write.write_all(&line).await {
            // A daemon that refuses a client answers before reading its request, and may
            // have closed already: its answer is still there to read.
            if !matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                return Err(err);
            }
        }
        let mut lines = BufReader::new(read).lines();
        while let Some(line) = lines.next_line().await? {
            let reply: Reply = serde_json::from_str(&line).map_err(io::Error::other)?;
            if reply.is_last() {
                return Ok(reply);
            }
            each(reply);
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the control connection before it finished",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_json_line_each() {
        let request = Request::Renew {
            names: vec!["www".to_owned()],
            force: true,
            action: Some("reissue".to_owned()),
            new_key: true,
        };
        let line = serde_json::to_string(&request).expect("serialize");
        assert!(!line.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Request>(&line).expect("parse"),
            request
        );
        for reply in [
            Reply::Out("www: renewed".to_owned()),
            Reply::Done { ok: false },
            Reply::Refused("no".to_owned()),
        ] {
            let line = serde_json::to_string(&reply).expect("serialize");
            assert_eq!(serde_json::from_str::<Reply>(&line).expect("parse"), reply);
        }
    }

    #[tokio::test]
    async fn a_client_gets_the_daemons_replies_and_a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SOCKET_NAME);
        // A socket left by a daemon that died: bound, then its listener dropped.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
        let listener = bind(&path).expect("a stale socket is replaced");
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o660);
        // While it answers, a second daemon cannot take it over.
        assert!(bind(&path).is_err());

        let (requests, mut incoming) = mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move { serve(listener, requests, stop.cancelled_owned()).await }
        });
        // The daemon's side: answer one request.
        let daemon = tokio::spawn(async move {
            let Incoming { request, replies } = incoming.recv().await.expect("a request");
            assert_eq!(request, Request::InFlight);
            replies
                .send(Reply::InFlight(vec!["www".to_owned()]))
                .expect("send");
            replies.send(Reply::Done { ok: true }).expect("send");
        });
        let client = Client::connect_to(&path).await.expect("connects");
        let mut seen = Vec::new();
        let last = client
            .request(&Request::InFlight, |reply| seen.push(reply))
            .await
            .expect("answered");
        assert_eq!(seen, [Reply::InFlight(vec!["www".to_owned()])]);
        assert_eq!(last, Reply::Done { ok: true });
        daemon.await.expect("daemon side");
        stop.cancel();
        server.await.expect("server stops");
    }

    #[test]
    fn something_else_at_the_socket_path_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SOCKET_NAME);
        std::os::unix::fs::symlink("/etc/passwd", &path).expect("symlink");
        assert!(bind(&path).is_err());
        assert!(
            std::fs::symlink_metadata(&path)
                .expect("still there")
                .file_type()
                .is_symlink()
        );
    }
}
