//! The `tenure` command line. Besides checking the help text, this test makes Cargo
//! build the `tenure` binary whenever the workspace's tests are built (Cargo builds a
//! package's binaries for its integration tests), so the e2e suite can start real
//! `tenure worker` processes from `target/<profile>/tenure`.

use std::process::Command;

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
