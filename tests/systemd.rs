//! The shipped systemd unit verifies (`systemd-analyze verify` prints
//! nothing: it only warns on unknown keys, so silence is the check), its
//! sandbox scores at most 2.0 on `systemd-analyze security` (SAFE), and the
//! example config it points at parses.

mod common;

use std::process::Command;

#[test]
fn unit_verifies_and_example_config_parses() {
    let unit = std::fs::read_to_string(common::root().join("systemd/sparsa.service")).unwrap();
    // verify needs ExecStart to exist: point it at the binary under test.
    let unit = unit.replace("/usr/local/bin/sparsa", env!("CARGO_BIN_EXE_sparsa"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparsa.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (install systemd: .ci/setup)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    eprintln!("{score}");
    assert!(
        out.status.success(),
        "exposure above 2.0 (threshold 20 in tenths): {score}"
    );
    sparsa::live::config::ListenConfig::load(&common::root().join("systemd/sparsa.ron")).unwrap();
}
