//! Every event type in the catalogue (`tenure_domain::webhooks::EVENT_TYPES`) is named, as
//! a quoted string, by some test under `tests/` or `crates/*/tests/`: a type added to the
//! catalogue without a test that asserts it fails here, by name. This file is left out of
//! the search (it must not count as the test of anything), and it names no event type.

use std::path::{Path, PathBuf};

use tenure_domain::webhooks::EVENT_TYPES;

/// The workspace root: this package lives in its `tests/` folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The test sources: `tests/` and each crate's `tests/`, without this file.
fn test_sources() -> Vec<(PathBuf, String)> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("tests"), &mut files);
    let crates = std::fs::read_dir(root.join("crates")).expect("crates/");
    for krate in crates {
        rust_files(
            &krate.expect("a crate folder").path().join("tests"),
            &mut files,
        );
    }
    let this_file = Path::new(file!());
    files
        .into_iter()
        .filter(|path| !path.ends_with(this_file))
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text)
        })
        .collect()
}

/// The event types that no source names as a quoted string (`"type.name"`).
fn unnamed<'a>(catalogue: &[&'a str], sources: &[(PathBuf, String)]) -> Vec<&'a str> {
    catalogue
        .iter()
        .copied()
        .filter(|event| {
            let quoted = format!("\"{event}\"");
            !sources.iter().any(|(_, text)| text.contains(&quoted))
        })
        .collect()
}

#[test]
fn every_catalogued_event_type_is_asserted_by_a_test() {
    let sources = test_sources();
    assert!(
        sources.len() > 10,
        "the test sources were not found under {}",
        workspace_root().display()
    );
    assert!(
        sources
            .iter()
            .all(|(path, _)| !path.ends_with(Path::new(file!()))),
        "this file must not count"
    );
    // The check can fail: a type no test names is reported.
    let made_up = "made_up.never_emitted";
    assert_eq!(unnamed(&[made_up], &sources), [made_up]);

    let missing = unnamed(EVENT_TYPES, &sources);
    assert!(
        missing.is_empty(),
        "event types in the catalogue that no test names (add a test that triggers each \
         and asserts its event, e.g. in tests/e2e/events.rs): {missing:?}"
    );
}
