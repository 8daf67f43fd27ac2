//! The `nopos-webhooks` binary, end to end (feature `cli`): `serve` and `listen` as real
//! processes on free loopback ports, the announcement's calls against them, `trigger`, `sign`
//! and `verify`, exit codes. Every process is killed when its test ends; readiness is read from
//! the process's own output under a timeout, never slept for.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_nopos-webhooks");
/// The longest any process gets to say something we wait for.
const PATIENCE: Duration = Duration::from_secs(15);

/// A running process whose output lines arrive on channels; killed when dropped.
struct Running {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
}

fn pump(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("NOPOS_API_KEY")
            .env_remove("NOPOS_WEBHOOK_SECRET")
            .env_remove("NOPOS_DATABASE_URL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("cannot start nopos-webhooks");
        let stdout = pump(child.stdout.take().unwrap());
        let stderr = pump(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// The first stdout line containing `needle`.
    async fn stdout_line(&mut self, needle: &str) -> String {
        wait_for_line(&mut self.stdout, needle, "stdout").await
    }

    /// The first stderr line containing `needle`.
    async fn stderr_line(&mut self, needle: &str) -> String {
        wait_for_line(&mut self.stderr, needle, "stderr").await
    }

    /// The next stdout line.
    async fn next_stdout(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.stdout.recv())
            .await
            .expect("no output in time")
            .expect("the process closed stdout")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends Ctrl-C (SIGINT) and returns the exit code once the process has stopped by itself.
    #[cfg(unix)]
    async fn interrupt(mut self) -> (i32, Vec<String>) {
        let pid = self.child.id().expect("still running").to_string();
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let code = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("no exit after Ctrl-C")
            .unwrap()
            .code()
            .unwrap_or(-1);
        let mut stderr = Vec::new();
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(1), self.stderr.recv()).await
        {
            stderr.push(line);
        }
        (code, stderr)
    }
}

async fn wait_for_line(
    lines: &mut mpsc::UnboundedReceiver<String>,
    needle: &str,
    stream: &str,
) -> String {
    let found = tokio::time::timeout(PATIENCE, async {
        let mut seen = Vec::new();
        while let Some(line) = lines.recv().await {
            if line.contains(needle) {
                return Ok(line);
            }
            seen.push(line);
        }
        Err(seen)
    })
    .await;
    match found {
        Ok(Ok(line)) => line,
        Ok(Err(seen)) => panic!("{stream} closed before `{needle}`; it said: {seen:#?}"),
        Err(elapsed) => panic!("no `{needle}` on {stream}: {elapsed}"),
    }
}

/// The URL after `listening on `.
fn address_in(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
        .expect("no URL in the line")
        .to_owned()
}

/// A `serve` process and what it printed at start.
struct Serve {
    process: Running,
    base: String,
    key_line: String,
}

impl Serve {
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut process = Running::start(&all, env);
        let key_line = process.stdout_line("API key:").await;
        let base = address_in(&process.stdout_line("listening on").await);
        Serve {
            process,
            base,
            key_line,
        }
    }

    /// The key printed at start, when one was generated.
    fn generated_key(&self) -> Option<String> {
        self.key_line
            .split_whitespace()
            .find(|word| word.starts_with("nopos_sk_"))
            .map(str::to_owned)
    }
}

/// A `listen` process and the URL it receives on.
async fn listen(secrets: &[&str]) -> (Running, String) {
    let mut args = vec!["listen", "--listen", "127.0.0.1:0"];
    for secret in secrets {
        args.extend_from_slice(&["--secret", secret]);
    }
    let mut process = Running::start(&args, &[]);
    let url = address_in(&process.stderr_line("listening on").await);
    (process, url)
}

struct Api<'a> {
    base: &'a str,
    key: &'a str,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.key));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The announcement's `fetch` body, with the listener's URL.
fn announcement_registration(url: &str) -> String {
    json!({
        "url": url,
        "events": ["transaction.completed", "inventory.low_stock", "payment.succeeded"],
        "secret": "your_webhook_secret"
    })
    .to_string()
}

const SALE: &str = r#"{"transaction_id":"txn_9876543210","amount":125.50,"status":"completed","customer_id":"cust_123456"}"#;

/// Runs the binary to completion: exit code, stdout, stderr.
async fn run(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("NOPOS_WEBHOOK_SECRET")
        .env_remove("NOPOS_API_KEY")
        .env("RUST_BACKTRACE", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        // A command that fails before reading its input closes the pipe: that is its answer.
        let _ = pipe.write_all(input).await;
        drop(pipe);
    }
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the command did not finish in time")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[track_caller]
fn assert_one_line_error(stderr: &str) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// `sign`'s output as `--header` arguments.
fn header_args(signed: &str) -> Vec<String> {
    signed
        .lines()
        .flat_map(|line| ["--header".to_owned(), line.to_owned()])
        .collect()
}

#[tokio::test]
async fn serve_and_listen_deliver_the_announcement_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hooks.db").display());
    let serve = Serve::start(
        &["--database", &database, "--dangerous-allow-private-targets"],
        &[],
    )
    .await;
    let key = serve.generated_key().expect("a generated key is printed");
    let (mut listener, url) = listen(&["your_webhook_secret"]).await;
    let api = Api {
        base: &serve.base,
        key: &key,
        http: reqwest::Client::new(),
    };

    // The announcement's `fetch`: register.
    let (status, endpoint) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(announcement_registration(&url)),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"));

    // An event, emitted and delivered: `listen` prints the envelope as one JSON line.
    let (status, emitted) = api
        .call(
            "POST",
            "/v1/events",
            Some(format!(
                r#"{{"type":"transaction.completed","data":{SALE}}}"#
            )),
        )
        .await;
    assert_eq!(status, 202, "{emitted}");
    let line = listener.next_stdout().await;
    assert!(line.ends_with(&format!(r#""data":{SALE}}}"#)), "{line}");
    let printed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["id"], emitted["id"]);
    assert_eq!(printed["type"], "transaction.completed");
    listener.stderr_line("verified transaction.completed").await;

    // The announcement's `curl`: the test tool.
    let (status, tested) = api
        .call(
            "POST",
            "/v1/webhooks/test",
            Some(json!({"webhook_id": id, "event_type": "transaction.completed"}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivered"], true);
    assert_eq!(tested["status_code"], 200);
    assert!(tested["latency_ms"].is_u64());
    let line = listener.next_stdout().await;
    let printed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["id"], tested["event_id"]);
    assert_eq!(printed["data"]["transaction_id"], "txn_9876543210");

    // Rotation: the listener only knows the old secret and still verifies during the grace
    // period; a listener that only knows the new secret verifies too.
    let (status, rotated) = api
        .call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let (_, second) = api
        .call(
            "POST",
            "/v1/events",
            Some(r#"{"type":"payment.succeeded","data":{"payment_id":"pay_1","transaction_id":"txn_1","amount":125.50,"method":"card"}}"#.into()),
        )
        .await;
    let printed: Value = serde_json::from_str(&listener.next_stdout().await).unwrap();
    assert_eq!(printed["id"], second["id"]);
    let (mut new_listener, new_url) = listen(&[&new_secret]).await;
    let (status, _) = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": new_url}).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let (_, third) = api
        .call(
            "POST",
            "/v1/events",
            Some(format!(
                r#"{{"type":"transaction.completed","data":{SALE}}}"#
            )),
        )
        .await;
    let printed: Value = serde_json::from_str(&new_listener.next_stdout().await).unwrap();
    assert_eq!(printed["id"], third["id"]);

    // Wrong key: 401 in the documented shape.
    let wrong = Api {
        base: &serve.base,
        key: "not-the-right-key-at-all",
        http: reqwest::Client::new(),
    };
    let (status, refused) = wrong.call("GET", "/v1/webhooks", None).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "unauthorized");

    serve.process.stop().await;
    listener.stop().await;
    new_listener.stop().await;
}

#[tokio::test]
async fn listen_acknowledges_duplicates_once_and_refuses_forgeries() {
    let (mut listener, url) = listen(&["your_webhook_secret"]).await;
    let body = format!(
        r#"{{"id":"evt_dup_1","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{SALE}}}"#
    );
    let (code, signed, _) = run(
        &["sign", "--secret", "your_webhook_secret"],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(code, 0);
    let http = reqwest::Client::new();
    let post = |body: String| {
        let mut request = http.post(&url).body(body);
        for line in signed.lines() {
            let (name, value) = line.split_once(": ").unwrap();
            request = request.header(name, value);
        }
        request.send()
    };
    assert_eq!(post(body.clone()).await.unwrap().status(), 200);
    assert_eq!(listener.next_stdout().await, body);
    assert_eq!(post(body.clone()).await.unwrap().status(), 200);
    listener
        .stderr_line("duplicate transaction.completed evt_dup_1")
        .await;
    let tampered = body.replace("125.50", "1.00");
    let refused = post(tampered).await.unwrap();
    assert_eq!(refused.status(), 401);
    listener.stderr_line("rejected delivery (401)").await;
    // The duplicate and the forgery printed nothing: the next line is the next genuine event.
    let (code, trigger_out, trigger_err) = run(
        &[
            "trigger",
            "--url",
            &url,
            "--secret",
            "your_webhook_secret",
            "--event",
            "inventory.low_stock",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{trigger_err}");
    assert!(trigger_out.starts_with("200 OK in "), "{trigger_out}");
    let printed: Value = serde_json::from_str(&listener.next_stdout().await).unwrap();
    assert_eq!(printed["type"], "inventory.low_stock");
    listener.stop().await;
}

#[tokio::test]
async fn trigger_reports_failures_with_exit_codes() {
    let (listener, url) = listen(&["your_webhook_secret"]).await;
    // Signed with another secret: the listener answers 401, trigger exits 1.
    let (code, out, err) = run(
        &[
            "trigger",
            "--url",
            &url,
            "--secret",
            "another_secret_value",
            "--event",
            "payment.succeeded",
            "--data",
            r#"{"payment_id":"pay_1","transaction_id":"txn_1","amount":125.50,"method":"card"}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("401 Unauthorized in "), "{out}");
    assert_one_line_error(&err);
    listener.stop().await;

    // Nobody listening.
    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        drop(socket);
        format!("http://127.0.0.1:{port}/webhooks/nopos")
    };
    let (code, _, err) = run(
        &[
            "trigger",
            "--url",
            &closed,
            "--secret",
            "your_webhook_secret",
            "--event",
            "transaction.completed",
        ],
        None,
    )
    .await;
    assert_eq!(code, 1);
    assert_one_line_error(&err);
    assert!(err.contains("connection failed"), "{err}");
}

#[tokio::test]
async fn sign_output_verifies_with_verify() {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("event.json");
    let body = format!(
        r#"{{"id":"evt_1234567890","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{SALE}}}"#
    );
    std::fs::write(&body_file, &body).unwrap();
    let body_path = body_file.to_str().unwrap();

    // A user-chosen secret: the NoPOS header only.
    let (code, signed, err) = run(
        &[
            "sign",
            "--secret",
            "your_webhook_secret",
            "--timestamp",
            "1731234600",
            "--body-file",
            body_path,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(signed.lines().count(), 1, "{signed}");
    assert!(
        signed.starts_with("x-nopos-signature: t=1731234600,v1="),
        "{signed}"
    );
    let mut args = vec![
        "verify",
        "--secret",
        "your_webhook_secret",
        "--now",
        "1731234700",
    ];
    let headers = header_args(&signed);
    args.extend(headers.iter().map(String::as_str));
    let mut with_file = args.clone();
    with_file.extend_from_slice(&["--body-file", body_path]);
    let (code, out, err) = run(&with_file, None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid: nopos"), "{out}");
    assert!(out.contains("type: transaction.completed"), "{out}");
    assert!(out.contains("id: evt_1234567890"), "{out}");
    // The same from stdin.
    let (code, _, _) = run(&args, Some(body.as_bytes())).await;
    assert_eq!(code, 0);

    // A tampered body: exit 1 and one line saying why.
    let (code, out, err) = run(&args, Some(body.replace("125.50", "125.51").as_bytes())).await;
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert_one_line_error(&err);
    assert!(err.contains("no nopos signature matches"), "{err}");
    // Outside the replay window.
    let mut late = args.clone();
    late[4] = "1731299999";
    let (code, _, err) = run(&late, Some(body.as_bytes())).await;
    assert_eq!(code, 1);
    assert!(err.contains("too old"), "{err}");

    // A whsec_ secret and a rotation: NoPOS and Standard Webhooks headers, two signatures each;
    // either secret verifies either family.
    let new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (code, signed, err) = run(
        &[
            "sign",
            "--secret",
            new,
            "--secret",
            "your_webhook_secret",
            "--body-file",
            body_path,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(signed.lines().count(), 4, "{signed}");
    assert!(signed.contains("webhook-id: evt_1234567890"), "{signed}");
    let standard_only: String = signed
        .lines()
        .filter(|line| line.starts_with("webhook-"))
        .flat_map(|line| [line, "\n"])
        .collect();
    for secret in [new, "your_webhook_secret"] {
        let mut args = vec!["verify", "--secret", secret, "--body-file", body_path];
        let headers = header_args(&signed);
        args.extend(headers.iter().map(String::as_str));
        let (code, out, err) = run(&args, None).await;
        assert_eq!(code, 0, "{secret}: {err}");
        assert!(out.starts_with("valid: nopos"), "{out}");
    }
    let mut args = vec!["verify", "--secret", new, "--body-file", body_path];
    let headers = header_args(&standard_only);
    args.extend(headers.iter().map(String::as_str));
    let (code, out, err) = run(&args, None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("valid: standard-webhooks"), "{out}");

    // The NoPOS header is Stripe's construction: it verifies as a Stripe-Signature.
    let nopos_value = signed
        .lines()
        .find_map(|line| line.strip_prefix("x-nopos-signature: "))
        .unwrap();
    let stripe_header = format!("stripe-signature: {nopos_value}");
    let (code, out, err) = run(
        &[
            "verify",
            "--secret",
            new,
            "--header",
            &stripe_header,
            "--body-file",
            body_path,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("valid: stripe"), "{out}");
}

#[tokio::test]
async fn usage_errors_exit_2_without_panicking() {
    let body = "{}";
    for args in [
        &[][..],
        &["frobnicate"],
        &["sign"],
        &["sign", "--secret", "short"],
        &[
            "sign",
            "--secret",
            "your_webhook_secret",
            "--timestamp",
            "soon",
        ],
        &["sign", "--secret", "your_webhook_secret", "--id", "a.b"],
        &[
            "sign",
            "--secret",
            "your_webhook_secret",
            "--body-file",
            "/nonexistent/body.json",
        ],
        &["verify", "--secret", "your_webhook_secret"],
        &[
            "verify",
            "--secret",
            "your_webhook_secret",
            "--header",
            "no colon here",
        ],
        &[
            "verify",
            "--secret",
            "your_webhook_secret",
            "--header",
            "x: y",
            "--now",
            "99999999999999999",
        ],
        &[
            "trigger",
            "--url",
            "ftp://x",
            "--secret",
            "your_webhook_secret",
            "--event",
            "transaction.completed",
        ],
        &[
            "trigger",
            "--url",
            "http://127.0.0.1:9/",
            "--secret",
            "your_webhook_secret",
            "--event",
            "acme.custom",
        ],
        &[
            "trigger",
            "--url",
            "http://127.0.0.1:9/",
            "--secret",
            "your_webhook_secret",
            "--event",
            "payment.failed",
            "--data",
            "[1]",
        ],
        &["listen", "--secret", "short"],
        &[
            "listen",
            "--secret",
            "your_webhook_secret",
            "--path",
            "no-slash",
        ],
        &["serve", "--retry-schedule", "5 minutes"],
        &["serve", "--database", "mysql://db/x"],
        &["serve", "--database", "memory://", "--api-key", "short"],
        &["serve", "--listen", "not-an-address"],
        &["events", "--yaml"],
    ] {
        let (code, out, err) = run(args, Some(body.as_bytes())).await;
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("error: ") || err.contains("Usage: "),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{args:?}: {err}"
        );
    }
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["verify", "--help"],
        &["sign", "--help"],
        &["listen", "--help"],
        &["trigger", "--help"],
        &["events", "--help"],
    ] {
        let (code, out, _) = run(args, None).await;
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Examples:"), "{args:?}: {out}");
    }
    let (code, out, _) = run(&["--version"], None).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("nopos-webhooks "), "{out}");
}

#[tokio::test]
async fn events_lists_the_catalogue() {
    let (code, out, _) = run(&["events", "--json"], None).await;
    assert_eq!(code, 0);
    let catalogue: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(catalogue.len(), 13);
    assert!(
        catalogue
            .iter()
            .all(|e| e["sample"].is_object() && e["description"].is_string())
    );
    let (code, out, _) = run(&["events"], None).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("transaction.completed") && l.contains("Sale finalized"))
    );
}

#[tokio::test]
async fn serve_refuses_private_targets_without_the_flag() {
    let serve = Serve::start(
        &["--database", "memory://"],
        &[("NOPOS_API_KEY", "given-key-0123456789")],
    )
    .await;
    assert!(
        serve.key_line.contains("--api-key / NOPOS_API_KEY"),
        "{}",
        serve.key_line
    );
    assert!(serve.generated_key().is_none());
    let api = Api {
        base: &serve.base,
        key: "given-key-0123456789",
        http: reqwest::Client::new(),
    };
    let (status, refused) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(announcement_registration(
                "http://127.0.0.1:3000/webhooks/nopos",
            )),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "blocked_target");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--dangerous-allow-private-targets")
    );
    let (status, created) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(announcement_registration(
                "https://your-app.com/webhooks/nopos",
            )),
        )
        .await;
    assert_eq!(status, 201, "{created}");

    // Ctrl-C: a graceful stop, exit code 0.
    #[cfg(unix)]
    {
        let (code, stderr) = serve.process.interrupt().await;
        assert_eq!(code, 0, "{stderr:?}");
        assert!(stderr.iter().any(|line| line == "stopped"), "{stderr:?}");
    }
    #[cfg(not(unix))]
    serve.process.stop().await;
}

/// `serve` on `database`, stopped with Ctrl-C and started again: the endpoints, events and the
/// generated API key are still there.
/// `key_file` is where the key's digest is expected: given with `--api-key-file`, or the
/// default when `explicit` is false.
async fn restart_keeps_endpoints_events_and_the_key(
    database: &str,
    key_file: &Path,
    explicit: bool,
) {
    let key_file = key_file.to_str().unwrap();
    let mut args = vec!["--database", database];
    if explicit {
        args.extend_from_slice(&["--api-key-file", key_file]);
    }
    let first = Serve::start(&args, &[]).await;
    let key = first
        .generated_key()
        .expect("a generated key at the first start");
    assert!(first.key_line.contains(key_file), "{}", first.key_line);
    let stored = std::fs::read_to_string(key_file).unwrap();
    assert!(!stored.contains(&key), "the key itself is never stored");
    let api = Api {
        base: &first.base,
        key: &key,
        http: reqwest::Client::new(),
    };
    let (status, endpoint) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(
                json!({"url": "https://your-app.com/webhooks/nopos", "events": ["customer.*"]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    // An event no endpoint subscribes to: stored, delivered nowhere.
    let (status, event) = api
        .call(
            "POST",
            "/v1/events",
            Some(format!(
                r#"{{"type":"transaction.completed","data":{SALE}}}"#
            )),
        )
        .await;
    assert_eq!(status, 202, "{event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let stopped = first.process;
    #[cfg(unix)]
    assert_eq!(stopped.interrupt().await.0, 0);
    #[cfg(not(unix))]
    stopped.stop().await;

    let second = Serve::start(&args, &[]).await;
    assert!(second.generated_key().is_none(), "{}", second.key_line);
    assert!(
        second.key_line.contains("generated earlier"),
        "{}",
        second.key_line
    );
    let api = Api {
        base: &second.base,
        key: &key,
        http: reqwest::Client::new(),
    };
    let (status, kept) = api.call("GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["events"], json!(["customer.*"]));
    let (status, stored) = api
        .call("GET", &format!("/v1/events/{event_id}"), None)
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["data"]["amount"], 125.5);
    let (status, _) = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 204);
    second.process.stop().await;
}

#[tokio::test]
async fn serve_on_postgres_keeps_everything_across_a_restart() {
    let Ok(url) = std::env::var("NOPOS_WEBHOOKS_TEST_POSTGRES") else {
        eprintln!("cli: skipped serve on PostgreSQL: NOPOS_WEBHOOKS_TEST_POSTGRES is not set");
        return;
    };
    // `serve` opens the store in the connection's current schema: a fresh one, through the
    // URL's `options`, so that the test database's `public` schema stays as it was.
    let schema = format!(
        "nopos_cli_test_{}",
        hex::encode(nopos_webhooks::random::bytes::<8>())
    );
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let ddl = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    ddl(format!("CREATE SCHEMA \"{schema}\""))
        .execute(&admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let database = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_endpoints_events_and_the_key(&database, &dir.path().join("pg.api-key"), true)
        .await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(tables > 0, "the store was opened in {schema}");
    ddl(format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

#[tokio::test]
async fn serve_on_sqlite_keeps_everything_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nopos-webhooks.db");
    let database = format!("sqlite://{}", file.display());
    // The default key file: next to the database file.
    let key_file = dir.path().join("nopos-webhooks.db.api-key");
    restart_keeps_endpoints_events_and_the_key(&database, &key_file, false).await;
}

/// The Python interpreter of `.ci/run`'s venv, or `None` after a notice.
fn python() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("NOPOS_WEBHOOKS_PYTHON").filter(|p| !p.is_empty()) {
        return Some(path.into());
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    eprintln!(
        "cli: skipped the stripe/standardwebhooks check of `sign`: no Python venv \
         (set NOPOS_WEBHOOKS_PYTHON; .ci/run provides one)"
    );
    None
}

const PYTHON_CHECK: &str = r#"
import json, sys
import standardwebhooks, stripe
case = json.load(sys.stdin)
payload = case["body"]
stripe.WebhookSignature.verify_header(payload, case["headers"]["x-nopos-signature"], case["secret"], 300)
standardwebhooks.Webhook(case["secret"]).verify(payload, {
    "webhook-id": case["headers"]["webhook-id"],
    "webhook-timestamp": case["headers"]["webhook-timestamp"],
    "webhook-signature": case["headers"]["webhook-signature"],
})
print("ok")
"#;

#[tokio::test]
async fn sign_output_verifies_with_the_python_libraries() {
    let Some(python) = python() else { return };
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = String::from(
        r#"{"id":"evt_py_1","type":"customer.created","created_at":"2024-11-10T10:30:00Z","data":{"customer_id":"cust_1","first_name":"Zoë","amount":125.50}}"#,
    );
    let (code, signed, err) = run(&["sign", "--secret", secret], Some(body.as_bytes())).await;
    assert_eq!(code, 0, "{err}");
    let headers: serde_json::Map<String, Value> = signed
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_owned(), Value::String(value.to_owned()))
        })
        .collect();
    let case = json!({"body": body, "secret": secret, "headers": headers}).to_string();
    let mut child = Command::new(&python)
        .args(["-c", PYTHON_CHECK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", python.display()));
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(case.as_bytes()).await.unwrap();
    }
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "python verification failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}
