//! The `tenure` command line. Besides checking the help text, this test makes Cargo
//! build the `tenure` binary whenever the workspace's tests are built (Cargo builds a
//! package's binaries for its integration tests), so the e2e suite can start real
//! `tenure worker` processes from `target/<profile>/tenure`.

use std::process::{Command, Output};

use tenure_test_support::TestDb;

#[test]
fn worker_help_lists_the_renewal_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["worker", "--help"])
        .output()
        .expect("run tenure");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).expect("utf-8 help");
    for flag in ["--worker-interval-ms", "--renewal-tasks", "--database-url"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// A database URL where nothing listens: a command that parsed its settings stops at the
/// database, with exit code 1, instead of at the command line, with clap's 2.
const NO_DATABASE: &str = "postgres://postgres@127.0.0.1:1/tenure";

fn tenure(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
    command.args(args).env("TENURE_LOG", "error");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run tenure")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const YES: &[&str] = &["true", "TRUE", "1", "yes", "Yes", "on", "ON", "y", "t"];
const NO: &[&str] = &["false", "False", "0", "no", "NO", "off", "Off", "n", "f"];

#[test]
fn every_switch_s_environment_twin_takes_the_usual_spellings() {
    for (command, switch) in [
        ("serve", "TENURE_NO_WORKERS"),
        ("serve", "TENURE_NO_API_KEY_CACHE"),
        ("serve", "TENURE_TRUST_FORWARDED_FOR"),
        ("serve", "TENURE_WEBHOOK_ALLOW_PRIVATE_TARGETS"),
        ("worker", "TENURE_WEBHOOK_ALLOW_PRIVATE_TARGETS"),
    ] {
        for value in YES.iter().chain(NO) {
            let out = tenure(
                &[command],
                &[("DATABASE_URL", NO_DATABASE), (switch, value)],
            );
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command} with {switch}={value}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("database"), "{}", stderr(&out));
        }
        let out = tenure(
            &[command],
            &[("DATABASE_URL", NO_DATABASE), (switch, "maybe")],
        );
        assert_eq!(out.status.code(), Some(2), "{switch}=maybe is refused");
    }
}

/// `serve` with a pool of 4 connections: enough for HTTP alone, not for the background
/// loops too. It stops at the budget when the loops run here, and otherwise gets as far
/// as binding an address that cannot be bound.
#[tokio::test]
async fn tenure_no_workers_means_what_its_spelling_says() {
    let db = TestDb::new().await;
    let serve = |value: &'static str| {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            tenure(
                &["serve"],
                &[
                    ("DATABASE_URL", &url),
                    ("TENURE_POOL_SIZE", "4"),
                    ("TENURE_BIND", "256.0.0.1:1"),
                    ("TENURE_NO_WORKERS", value),
                ],
            )
        })
    };
    for value in ["1", "yes", "ON", "true"] {
        let out = serve(value).await.expect("tenure ran");
        let err = stderr(&out);
        assert!(err.contains("i/o"), "TENURE_NO_WORKERS={value}: {err}");
    }
    for value in ["0", "no", "Off", "false"] {
        let out = serve(value).await.expect("tenure ran");
        let err = stderr(&out);
        assert!(
            err.contains("TENURE_POOL_SIZE=4 leaves"),
            "TENURE_NO_WORKERS={value}: {err}"
        );
    }
}

/// `tenure demo` prints curl lines for where the server listens (`TENURE_BIND`), or for
/// `TENURE_PUBLIC_URL` when set.
#[tokio::test]
async fn the_demo_prints_urls_for_the_bind_address_or_the_public_url() {
    let db = TestDb::new().await;
    for (env, expected) in [
        (
            vec![("TENURE_BIND", "127.0.0.1:9123")],
            "http://127.0.0.1:9123/v1/products",
        ),
        (
            vec![("TENURE_BIND", "0.0.0.0:9124")],
            "http://127.0.0.1:9124/v1/products",
        ),
        (
            vec![
                ("TENURE_BIND", "0.0.0.0:9124"),
                ("TENURE_PUBLIC_URL", "https://billing.example.com/"),
            ],
            "https://billing.example.com/v1/products",
        ),
    ] {
        let url = db.url.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut env = env;
            env.push(("DATABASE_URL", &url));
            tenure(&["demo"], &env)
        })
        .await
        .expect("tenure ran");
        assert!(out.status.success(), "{}", stderr(&out));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.contains(&format!("curl -s {expected} ")),
            "{expected} missing from:\n{printed}"
        );
    }
}

/// A `tenure serve` child process, stopped when the test ends however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP response: the status, the headers (names in lower case) and the body.
type Response = (u16, Vec<(String, String)>, String);

/// One HTTP/1.1 exchange over a fresh connection.
fn http(addr: &str, request_head: &str) -> std::io::Result<Response> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    stream
        .write_all(format!("{request_head}Host: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, headers, body.to_owned()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

/// The link `tenure demo` prints opens the reference portal signed in: it names the API
/// and carries a customer token in its fragment, the token works on the portal, and the
/// portal's origin passes CORS (preflight and request) on the server the demo describes.
#[tokio::test]
async fn the_demo_s_portal_link_signs_in_from_an_allowed_origin() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let portal = "http://localhost:5174";
    let url = db.url.clone();
    let (demo_addr, demo_url) = (addr.clone(), url.clone());
    let out = tokio::task::spawn_blocking(move || {
        tenure(
            &["demo"],
            &[
                ("DATABASE_URL", &demo_url),
                ("TENURE_BIND", &demo_addr),
                ("TENURE_DEMO_PORTAL_URL", portal),
            ],
        )
    })
    .await
    .expect("tenure ran");
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = printed.lines();
    lines
        .by_ref()
        .find(|line| {
            line.starts_with("Open the self-service portal (examples/portal, `npm run dev`)")
        })
        .unwrap_or_else(|| panic!("no portal line in:\n{printed}"));
    let link = lines.next().expect("the link after the portal line");
    let expected = format!("{portal}/#api=http%3A%2F%2F127.0.0.1%3A{port}&token=");
    assert!(link.starts_with(&expected), "{link}");
    let token = &link[expected.len()..];
    assert!(!token.is_empty() && !token.contains(['&', '%']), "{link}");
    let customer = printed
        .lines()
        .find_map(|line| line.strip_prefix("customer:"))
        .map(str::trim)
        .expect("the customer line");

    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("serve")
            .env("TENURE_LOG", "error")
            .env("DATABASE_URL", &url)
            .env("TENURE_BIND", &addr)
            .env("TENURE_NO_WORKERS", "1")
            .env("TENURE_HTTP_WORKERS", "1")
            .env("TENURE_POOL_SIZE", "4")
            .spawn()
            .expect("start tenure serve"),
    );
    let ready = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            for _ in 0..300 {
                if let Ok((200, _, _)) = http(&addr, "GET /healthz HTTP/1.1\r\n") {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            false
        }
    })
    .await
    .expect("waited");
    assert!(ready, "tenure serve did not answer on {addr}");

    let exchange = |head: String| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || http(&addr, &head).expect("an answer"))
    };
    let (status, headers, _) = exchange(format!(
        "OPTIONS /v1/portal/me HTTP/1.1\r\nOrigin: {portal}\r\n\
         Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n"
    ))
    .await
    .expect("preflight");
    assert!(
        (200..300).contains(&status),
        "preflight: {status} {headers:?}"
    );
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(portal)
    );

    let (status, headers, body) = exchange(format!(
        "GET /v1/portal/me HTTP/1.1\r\nOrigin: {portal}\r\nAuthorization: Bearer {token}\r\n"
    ))
    .await
    .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(portal)
    );
    let me: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(me["id"], customer, "{body}");
}

/// A refused operator token is reported without its value (it is a secret, and
/// stderr ends up in logs), before anything is started.
#[test]
fn a_refused_operator_token_is_not_echoed() {
    for (name, value) in [
        ("TENURE_OPERATOR_TOKEN", "hunter2-too-short"),
        (
            "TENURE_OPERATOR_TOKEN",
            "sk_live_0123456789abcdef0123456789abcdef",
        ),
    ] {
        let out = tenure(&["serve"], &[("DATABASE_URL", NO_DATABASE), (name, value)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains(value), "the token is echoed: {err}");
        assert!(err.contains("TENURE_OPERATOR_TOKEN"), "{err}");
        assert!(err.contains("at least 32 characters"), "{err}");
    }
    let out = tenure(
        &["serve", "--operator-token", "hunter2-too-short"],
        &[("DATABASE_URL", NO_DATABASE)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}
