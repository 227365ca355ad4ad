//! A real nginx (Debian's package) started by a test as its own process: its own prefix
//! directory, `daemon off`, one TLS server per certificate on a loopback port, serving the
//! certificates from certkeeper's `live/NAME/` paths. Stopped when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub port: u16,
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
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
        "nginx is missing: the hook tests need a real nginx; install it with `apt-get install -y nginx`"
    )
}

impl Nginx {
    /// Serve each (server name, live dir) over TLS on one port.
    pub fn start(prefix: &Path, servers: &[(&str, &Path)]) -> Self {
        fs::create_dir_all(prefix.join("logs")).unwrap();
        fs::create_dir_all(prefix.join("tmp")).unwrap();
        let port = super::pebble::free_port();
        let mut text = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n",
            p = prefix.display()
        );
        for (name, live) in servers {
            text.push_str(&format!(
                "  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name {name};\n    ssl_certificate {live}/fullchain.pem;\n    ssl_certificate_key {live}/privkey.pem;\n    return 200 \"ok\\n\";\n  }}\n",
                live = live.display()
            ));
        }
        text.push_str("}\n");
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, text).unwrap();
        let child = Command::new(binary())
            .args(["-p"])
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(prefix.join("logs/stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let nginx = Self {
            prefix: prefix.to_owned(),
            conf,
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
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
