//! A real nginx (Debian's package) started by a test as its own process: its own prefix
//! directory, `daemon off`, on a loopback port, either one TLS server per certificate serving
//! certkeeper's `live/NAME/` files ([`Nginx::start`]) or plain-HTTP servers whose directives
//! the test gives ([`Nginx::start_http`]: a web root, the proxy `location`). Stopped when
//! dropped.
//!
//! Run as root (as in CI), nginx's workers would switch to `nobody` and could not read a web
//! root in a 0700 tempdir, so the config keeps them as root then; run as any other user,
//! nginx cannot switch users and everything belongs to that user already.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// How long nginx's master gets to stop its workers and exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Nginx {
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub port: u16,
    child: Child,
}

/// Stops nginx with SIGTERM, its fast shutdown: the master stops its workers and exits once
/// they are gone. SIGKILL to the master alone would leave the workers running, still
/// holding the port; so the fallback, when the master has not exited within
/// [`STOP_TIMEOUT`], is SIGKILL to the whole process group (nginx is started as the leader
/// of its own group, which its workers inherit).
impl Drop for Nginx {
    fn drop(&mut self) {
        // Already reaped (it failed to start): nothing of it is left to stop, and its pid may
        // belong to another process by now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Not reaped yet, so its pid, and the group it leads, cannot have been reused.
        let pid = Pid::from_child(&self.child);
        if kill_process(pid, Signal::TERM).is_ok() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => break,
                }
            }
            eprintln!(
                "nginx (pid {}) did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing its process group",
                self.child.id()
            );
        }
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = self.child.wait();
    }
}

pub fn binary() -> &'static str {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!(
        "nginx is missing: the hook and webroot tests need a real nginx; install it with `apt-get install -y nginx`"
    )
}

impl Nginx {
    /// Serve each (server name, live dir) over TLS on one free port.
    pub fn start(prefix: &Path, servers: &[(&str, &Path)]) -> Self {
        let port = super::pebble::free_port();
        let mut text = String::new();
        for (name, live) in servers {
            text.push_str(&format!(
                "  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name {name};\n    ssl_certificate {live}/fullchain.pem;\n    ssl_certificate_key {live}/privkey.pem;\n    return 200 \"ok\\n\";\n  }}\n",
                live = live.display()
            ));
        }
        Self::launch(prefix, port, &text)
    }

    /// Plain HTTP on `127.0.0.1:port` (Pebble's HTTP-01 port, say): one `server` block per
    /// (server names, directives), such as `root DIR;` or the proxy setup's `location`. The
    /// first is the default server, answering names no block lists.
    pub fn start_http(prefix: &Path, port: u16, servers: &[(&str, &str)]) -> Self {
        let mut text = String::new();
        for (index, (names, directives)) in servers.iter().enumerate() {
            let default = if index == 0 { " default_server" } else { "" };
            text.push_str(&format!(
                "  server {{\n    listen 127.0.0.1:{port}{default};\n    server_name {names};\n{directives}\n  }}\n"
            ));
        }
        Self::launch(prefix, port, &text)
    }

    /// Write `nginx.conf` with `servers` inside `http { }` and start nginx; returns once it
    /// accepts connections on `port`.
    fn launch(prefix: &Path, port: u16, servers: &str) -> Self {
        fs::create_dir_all(prefix.join("logs")).unwrap();
        fs::create_dir_all(prefix.join("tmp")).unwrap();
        let user = if rustix::process::geteuid().is_root() {
            "user root;\n"
        } else {
            ""
        };
        let text = format!(
            "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n{servers}}}\n",
            p = prefix.display()
        );
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, text).unwrap();
        let child = Command::new(binary())
            .args(["-p"])
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            // Its own process group, which the workers inherit: the fallback in `Drop`
            // kills the group.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(prefix.join("logs/stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut nginx = Self {
            prefix: prefix.to_owned(),
            conf,
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = nginx.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nginx did not start ({exited:?}): {}{}",
                fs::read_to_string(prefix.join("logs/stderr.log")).unwrap_or_default(),
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    /// `nginx -s reload` for this instance, as an argv.
    pub fn reload_argv(&self) -> Vec<String> {
        vec![
            binary().to_owned(),
            "-p".to_owned(),
            self.prefix.display().to_string(),
            "-c".to_owned(),
            self.conf.display().to_string(),
            "-e".to_owned(),
            self.prefix.join("logs/error.log").display().to_string(),
            "-s".to_owned(),
            "reload".to_owned(),
        ]
    }

    /// The serial of the certificate nginx serves for `server_name`, after verifying the
    /// chain against `root` (Pebble's issuing root) with a real TLS handshake.
    pub fn served_serial(&self, server_name: &str, root: &Path) -> String {
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", self.port)])
            .args([
                "-servername",
                server_name,
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(root)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "TLS verification failed:\n{text}"
        );
        let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
        let end =
            text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
        let pem = self.prefix.join("served.pem");
        fs::write(&pem, &text[start..end]).unwrap();
        super::serial(&pem)
    }

    /// Wait until nginx serves `serial` for `server_name`; how long it took.
    pub fn wait_for_serial(
        &self,
        server_name: &str,
        root: &Path,
        serial: &str,
        timeout: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let served = self.served_serial(server_name, root);
            if served == serial {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "nginx still serves {served}, not {serial}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
