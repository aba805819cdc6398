//! The benchmarks (benches/run.sh, benches/scaling.sh) run with tiny sizes, so they cannot rot. Need
//! nginx, wrk, aria2, opentracker (.ci/test installs them); the figures are not checked here.

use std::path::Path;
use std::process::Command;

/// Runs `benches/<script>` with `--smoke` on the test build's binary; returns what it printed
/// and the report it wrote.
fn smoke_run(script: &str) -> (String, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.json");
    let run = Command::new("bash")
        .arg(root.join("benches").join(script))
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_gotorrent-http"),
            "--smoke",
            "--out",
        ])
        .arg(&report)
        .current_dir(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (stdout, results)
}

#[test]
fn the_benchmark_runs_end_to_end_with_tiny_sizes() {
    let (stdout, results) = smoke_run("run.sh");

    let cases = results["cases"].as_object().unwrap();
    for section in ["serve", "download", "tracker", "create"] {
        assert!(
            cases.keys().any(|k| k.starts_with(section)),
            "no {section} case in {stdout}"
        );
    }
    assert!(
        cases
            .values()
            .all(|c| c["errors"].as_u64().unwrap_or(0) == 0),
        "{stdout}"
    );
}

#[test]
fn the_scaling_benchmark_runs_end_to_end_with_tiny_sizes() {
    let (stdout, results) = smoke_run("scaling.sh");

    for case in ["listing", "seeders", "rss"] {
        assert!(
            !results[case].as_array().unwrap().is_empty(),
            "no {case} rows in {stdout}"
        );
    }
}
