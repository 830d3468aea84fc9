//! A minimal W3C WebDriver client (enough to open a page, type, click, read
//! and take screenshots), speaking HTTP/1.1 to chromedriver on loopback,
//! and [`print_pdf`] for tests that need a real PDF.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A script returning the page's address and text, for failure messages.
const PAGE: &str = "return location.href + '\\n' + (document.body ? document.body.innerText : '')";

/// The key WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session.
pub struct Session {
    port: u16,
    id: String,
}

fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .map_err(|error| format!("chromedriver: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|error| error.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|error| error.to_string())?;
    let body = read_body(&mut stream).map_err(|error| format!("chromedriver: {error}"))?;
    let value: Value = serde_json::from_str(&body).map_err(|error| format!("{error}: {body}"))?;
    if let Some(error) = value["value"]["error"].as_str() {
        return Err(format!(
            "{error}: {}",
            value["value"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(value["value"].clone())
}

/// Reads one HTTP/1.1 response's body. chromedriver keeps the connection
/// open after answering, so the body ends by its length, not by EOF.
fn read_body(stream: &mut impl Read) -> std::io::Result<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 16384];
    let malformed = || std::io::Error::new(std::io::ErrorKind::InvalidData, "a malformed answer");
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let body_start = end + 4;
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map(|value| value.trim().parse::<usize>().map_err(|_| malformed()))
                .transpose()?;
            let chunked = head.contains("transfer-encoding: chunked")
                || head.contains("transfer-encoding:chunked");
            let complete = match length {
                Some(length) => received.len() >= body_start + length,
                None if chunked => received[body_start..]
                    .windows(5)
                    .any(|window| window == b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                let body = &received
                    [body_start..body_start + length.unwrap_or(received.len() - body_start)];
                let body = String::from_utf8_lossy(body);
                return Ok(if chunked {
                    unchunk(&body)
                } else {
                    body.into_owned()
                });
            }
        }
        let read = crate::through_signals(|| stream.read(&mut buffer))?;
        if read == 0 {
            return Err(malformed());
        }
        received.extend_from_slice(&buffer[..read]);
    }
}

/// Whether the chromedriver at `port` is ready for sessions.
pub fn ready(port: u16) -> bool {
    request(port, "GET", "/status", None).is_ok_and(|value| value["ready"] == json!(true))
}

fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// chromedriver running in a lab host, reachable from the test through a
/// forwarded port.
pub struct Driver {
    /// The process (stopped with the lab).
    pub process: crate::lab::Process,
    /// The forward to its port inside the host.
    pub forward: crate::lab::Forward,
    /// The home of the browsers it starts (their NSS database is there).
    pub home: std::path::PathBuf,
}

impl Driver {
    /// Makes the browsers this driver starts trust the certificate
    /// authority `root` (PEM), as a phone trusts Let's Encrypt: Chromium on
    /// Linux reads the user's NSS database (Debian's `certutil` writes it).
    pub fn trust(&self, root: &std::path::Path) {
        let database = self.home.join(".pki/nssdb");
        std::fs::create_dir_all(&database).expect("the NSS database's folder");
        let database = format!("sql:{}", database.display());
        let root = root.to_str().expect("a UTF-8 path");
        for args in [
            vec!["-d", &database, "-N", "--empty-password"],
            vec![
                "-d",
                &database,
                "-A",
                "-t",
                "C,,",
                "-n",
                "household-ca",
                "-i",
                root,
            ],
        ] {
            let output = std::process::Command::new("certutil")
                .args(&args)
                .output()
                .expect("certutil runs");
            assert!(
                output.status.success(),
                "certutil {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// Starts chromedriver in `host` (the browsers it starts live in that
/// host's namespace); Chromium's home, crash reports, caches and
/// temporary files (its singleton socket, PulseAudio's folder) go under
/// the lab's directory.
pub fn start_driver(lab: &mut crate::lab::Lab, host: &crate::lab::Host) -> Driver {
    let mut command = lab.command(host, "chromedriver");
    command.args(["--port=9515", "--allowed-ips=127.0.0.1"]);
    let home = lab.dir.path().join(format!("{}-browser-home", host.name));
    let temporary = home.join("tmp");
    std::fs::create_dir_all(&temporary).expect("the browser's temporary folder");
    command
        .env("TMPDIR", &temporary)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    let process = lab.spawn(host, &format!("{}-chromedriver", host.name), command);
    let forward = lab.forward(host, "127.0.0.1:9515".parse().expect("an address"));
    let ready = crate::wait_until(Duration::from_secs(15), || ready(forward.port));
    assert!(
        ready.is_some(),
        "chromedriver did not start:\n{}",
        process.log_text()
    );
    Driver {
        process,
        forward,
        home,
    }
}

/// Prints `html` to the PDF `out` with headless Chromium. Everything the
/// browser keeps (its profile, crash reports, caches, the page itself) goes
/// under `scratch`, never the user's home.
pub fn print_pdf(
    html: &str,
    out: &std::path::Path,
    scratch: &std::path::Path,
) -> Result<(), String> {
    std::fs::create_dir_all(scratch).map_err(|error| error.to_string())?;
    let page = scratch.join("page.html");
    std::fs::write(&page, html).map_err(|error| error.to_string())?;
    let status = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(&page)
        .env("HOME", scratch)
        .env("TMPDIR", scratch)
        .env("XDG_CONFIG_HOME", scratch.join("config"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|error| format!("chromium: {error}"))?;
    if !status.success() {
        return Err(format!("chromium printed no PDF ({status})"));
    }
    Ok(())
}

impl Session {
    /// Starts headless Chromium through the chromedriver at `port`.
    pub fn chromium(
        port: u16,
        profile: &std::path::Path,
        width: u32,
        height: u32,
    ) -> Result<Session, String> {
        Session::chromium_with(port, profile, width, height, &[])
    }

    /// [`Session::chromium`] with `extra` command-line switches.
    pub fn chromium_with(
        port: u16,
        profile: &std::path::Path,
        width: u32,
        height: u32,
        extra: &[&str],
    ) -> Result<Session, String> {
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
            },
        }}});
        let value = request(port, "POST", "/session", Some(&capabilities))?;
        let id = value["sessionId"]
            .as_str()
            .ok_or("no session id")?
            .to_owned();
        Ok(Session { port, id })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        request(
            self.port,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_ref(),
        )
    }

    /// Opens `url`.
    pub fn open(&self, url: &str) -> Result<(), String> {
        self.call("POST", "/url", Some(json!({"url": url})))
            .map(|_| ())
    }

    /// Runs `script` in the page and returns its result.
    pub fn script(&self, script: &str) -> Result<Value, String> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` until it returns something truthy (not null, false, "" or 0).
    pub fn wait_for(&self, script: &str, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.script(script)?;
            let truthy = !(value.is_null()
                || value == json!(false)
                || value == json!("")
                || value == json!(0));
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                let page = self
                    .script(PAGE)
                    .map_or_else(|error| error, |page| page.as_str().unwrap_or("").to_owned());
                return Err(format!(
                    "`{script}` stayed falsy for {limit:?}; the page:\n{page}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> Result<String, String> {
        let value = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        value[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element {css}"))
    }

    /// Types `text` into the element `css`.
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let element = self.element(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .map(|_| ())
    }

    /// Clicks the element `css`.
    pub fn click(&self, css: &str) -> Result<(), String> {
        let element = self.element(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .map(|_| ())
    }

    /// Opens a new tab and makes it the current one.
    pub fn new_tab(&self) -> Result<(), String> {
        let value = self.call("POST", "/window/new", Some(json!({"type": "tab"})))?;
        let handle = value["handle"]
            .as_str()
            .ok_or("no window handle")?
            .to_owned();
        self.switch_to(&handle)
    }

    /// Grants the page's origin the permission `name` (as a person
    /// answering the browser's prompt with Allow).
    pub fn grant(&self, name: &str) -> Result<(), String> {
        self.call(
            "POST",
            "/permissions",
            Some(json!({"descriptor": {"name": name}, "state": "granted"})),
        )
        .map(|_| ())
    }

    /// Emulates a phone's screen on the current tab: `width` × `height`
    /// CSS pixels, a touch screen, a mobile viewport (headless Chromium's
    /// windows are at least 500 pixels wide otherwise).
    pub fn emulate_phone(&self, width: u32, height: u32) -> Result<(), String> {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true}),
        )?;
        self.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": true, "maxTouchPoints": 5}),
        )
        .map(|_| ())
    }

    /// Emulates the system's dark (`dark`) or light scheme on the current tab.
    pub fn color_scheme(&self, scheme: &str) -> Result<(), String> {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .map(|_| ())
    }

    /// The current tab's handle.
    pub fn current_tab(&self) -> Result<String, String> {
        let value = self.call("GET", "/window", None)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no window handle".into())
    }

    /// Makes the tab `handle` the current one (the front tab).
    pub fn switch_to(&self, handle: &str) -> Result<(), String> {
        self.call("POST", "/window", Some(json!({"handle": handle})))
            .map(|_| ())
    }

    /// Runs the DevTools protocol command `method` with `params` on the
    /// current tab (chromedriver's passthrough); its result.
    pub fn cdp(&self, method: &str, params: Value) -> Result<Value, String> {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": method, "params": params})),
        )
    }

    /// The value of the JavaScript `expression` in the current tab, awaited
    /// when it is a promise, through the DevTools protocol
    /// (`Runtime.evaluate`).
    pub fn evaluate(&self, expression: &str) -> Result<Value, String> {
        let answer = self.cdp(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        )?;
        if let Some(thrown) = answer.get("exceptionDetails") {
            return Err(format!("`{expression}` threw: {thrown}"));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let value = self.call("GET", "/screenshot", None)?;
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().ok_or("no screenshot")?)
            .map_err(|error| error.to_string())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = request(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its answer a piece at a time, a signal interrupting the
    /// read before each piece (as chromedriver's slow answers were, once).
    struct Interrupted {
        pieces: Vec<&'static [u8]>,
        interrupt_next: bool,
    }

    impl Read for Interrupted {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt_next = !self.interrupt_next;
            if self.interrupt_next {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            if self.pieces.is_empty() {
                return Ok(0);
            }
            let piece = self.pieces.remove(0);
            buffer[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn an_answer_interrupted_by_signals_is_read_whole() {
        let mut answer = Interrupted {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n",
                b"\r\n{\"value\":",
                b"\"done\"}",
            ],
            interrupt_next: false,
        };
        assert_eq!(read_body(&mut answer).unwrap(), "{\"value\":\"done\"}");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(unchunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"), "{\"a\":1}");
    }
}
