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
