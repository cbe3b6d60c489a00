//! The shipped systemd units verify (`systemd-analyze verify` prints
//! nothing: it only warns on unknown keys, so silence is the check), their
//! sandboxes score at most 2.0 on `systemd-analyze security` (SAFE), and the
//! example config `sparsa.service` points at parses. `sparsa-serve.service`
//! keeps `sparsa.service`'s sandbox but for the sound devices and the
//! network, which it gets only as loopback peers on its activated socket.

mod common;

use std::path::Path;
use std::process::Command;

/// Copies the units named from systemd/ into a temporary directory with
/// ExecStart pointing at the binary under test (verify needs it to exist).
fn units_under_test(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        let unit = std::fs::read_to_string(common::root().join("systemd").join(name)).unwrap();
        let unit = unit.replace("/usr/local/bin/sparsa", env!("CARGO_BIN_EXE_sparsa"));
        std::fs::write(dir.path().join(name), unit).unwrap();
    }
    dir
}

/// `systemd-analyze verify` succeeds on `path` and prints nothing.
fn assert_verifies(path: &Path) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(path)
        .output()
        .expect("systemd-analyze (install systemd: .ci/setup)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "{}: {text}",
        path.display()
    );
}

/// `systemd-analyze security` scores the service at most 2.0 (SAFE).
fn assert_safe(path: &Path) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(path)
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
}

/// The unit's `Key=value` lines, comments and section headers left out.
fn settings(unit: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(String::from)
        .collect()
}

#[test]
fn unit_verifies_and_example_config_parses() {
    let dir = units_under_test(&["sparsa.service"]);
    let path = dir.path().join("sparsa.service");
    assert_verifies(&path);
    assert_safe(&path);
    sparsa::live::config::ListenConfig::load(&common::root().join("systemd/sparsa.ron")).unwrap();
}

#[test]
fn serve_units_verify_and_allow_only_their_socket() {
    let dir = units_under_test(&["sparsa-serve.service", "sparsa-serve.socket"]);
    let service = dir.path().join("sparsa-serve.service");
    let socket = dir.path().join("sparsa-serve.socket");
    assert_verifies(&service);
    // The socket unit verifies only next to the service it activates.
    assert_verifies(&socket);
    assert_safe(&service);

    let read = |name: &str| std::fs::read_to_string(common::root().join("systemd").join(name));
    let serve = settings(&read("sparsa-serve.service").unwrap());
    let sock = settings(&read("sparsa-serve.socket").unwrap());
    for want in [
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ] {
        assert!(serve.iter().any(|l| l == want), "service lacks {want}");
    }
    for want in [
        "ListenStream=127.0.0.1:2700",
        "FileDescriptorName=vosk",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
    ] {
        assert!(sock.iter().any(|l| l == want), "socket lacks {want}");
    }
    // Every sandbox setting of sparsa.service is kept, but the sound
    // devices and the no-network ones the server cannot run with.
    let listen = read("sparsa.service").unwrap();
    let sandbox = &listen[listen.find("DynamicUser=").unwrap()..listen.find("[Install]").unwrap()];
    let allowed_to_differ = [
        "SupplementaryGroups=audio",
        "DeviceAllow=char-alsa rw",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
    ];
    for line in settings(sandbox) {
        if !allowed_to_differ.contains(&line.as_str()) {
            assert!(serve.contains(&line), "sparsa-serve.service drops {line}");
        }
    }
}
