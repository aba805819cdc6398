//! schemathesis (from PyPI) fuzzes the live server from its own OpenAPI document: every
//! operation, a hundred generated cases each, with every check (server errors, status codes,
//! content types, response schemas, schema-valid requests accepted and invalid ones refused).

mod support;

use std::path::Path;
use std::process::Command;

use support::{content, TestApp};

#[actix_web::test]
async fn schemathesis_finds_no_failures() {
    let found = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "schemathesis is missing: pip install schemathesis (.ci/test does)"
    );
    let data = content(300_000);
    let app = TestApp::spawn_with(&[("fuzzed file ü.bin", &data[..])], |_| {}, |_| {}).await;
    app.wait_for_torrent("fuzzed file ü.bin").await;

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let schema = format!("{}/api-docs/openapi.json", app.url);
    // Run from a scratch dir: schemathesis writes a cache where it runs.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_owned();
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .current_dir(cwd)
            .arg("--no-color")
            .arg("--config-file")
            .arg(config)
            .args([
                "run",
                &schema,
                "--max-examples",
                "100",
                "--request-timeout",
                "10",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let report = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("Tested:"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        output.status.success(),
        "schemathesis failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
