//! A real nginx (Debian's package) started by a test as its own process: its own prefix
//! directory, `daemon off`, one plain-HTTP server on a loopback port whose body the test
//! gives (a `root` for the webroot tests, the proxy `location` for the proxy setup). Stopped
//! when dropped.
//!
//! Run as root (as in CI), nginx's workers would switch to `nobody` and could not read a web
//! root in a 0700 tempdir, so the config keeps them as root then; run as any other user,
//! nginx cannot switch users and everything belongs to that user already.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub prefix: PathBuf,
    pub port: u16,
    child: Child,
}

/// Stops nginx with SIGTERM (its fast shutdown), so the master stops its workers before it
/// exits. SIGKILL would kill the master alone and leave the workers running, still holding
/// the port; it is only the fallback when the master has not exited within a few seconds.
impl Drop for Nginx {
    fn drop(&mut self) {
        // The child is not reaped yet, so its pid cannot have been reused.
        let pid = rustix::process::Pid::from_child(&self.child);
        if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
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
        "nginx is missing: the webroot tests need a real nginx; install it with `apt-get install -y nginx`"
    )
}

impl Nginx {
    /// nginx on `127.0.0.1:port` with one server whose directives are `server_body`, files
    /// under `prefix`. Returns once it accepts connections.
    pub fn start(prefix: &Path, port: u16, server_body: &str) -> Self {
        fs::create_dir_all(prefix.join("logs")).expect("logs dir");
        fs::create_dir_all(prefix.join("tmp")).expect("tmp dir");
        let user = if rustix::process::geteuid().is_root() {
            "user root;\n"
        } else {
            ""
        };
        let conf_text = format!(
            "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {p}/nginx.pid;\n\
             error_log {p}/logs/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  \
             proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  \
             uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    server_name _;\n{server_body}\n  }}\n}}\n",
            p = prefix.display()
        );
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, conf_text).expect("write nginx.conf");
        let mut child = Command::new(binary())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(prefix.join("logs/stderr.log")).expect("stderr log"),
            ))
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().expect("nginx status");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nginx did not start ({exited:?}): {}{}",
                fs::read_to_string(prefix.join("logs/stderr.log")).unwrap_or_default(),
                fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            prefix: prefix.to_owned(),
            port,
            child,
        }
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}
