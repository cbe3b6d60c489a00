//! Every numeric setting has one documented range, checked alike for
//! flags, `--config` files and the daemon's config (issue #21, class 1):
//! a value outside it (NaN, ±inf, 1e400, negative beams, zero counts) is
//! refused with exit 2 and the setting named, never decoded into an empty
//! or nonsense transcript.

use proptest::prelude::*;
use sparsa::live::config::ListenConfig;
use sparsa::recognizer::{RecognizerConfig, RecognizerFlags};
use sparsa::search::graph::DecoderConfig;
use sparsa::serve::ServeFlags;
use std::process::Command;

fn sparsa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sparsa"))
}

fn clip() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/so762_000490017.flac"
    )
    .to_string()
}

/// Sets float setting `i` of the recognizer flags to `v`.
fn float_flag(i: usize, v: f32) -> RecognizerFlags {
    let mut f = RecognizerFlags::default();
    match i {
        0 => f.lm_weight = Some(v),
        1 => f.word_insertion_penalty = Some(v),
        2 => f.transition_scale = Some(v),
        3 => f.beam = Some(v),
        4 => f.dither = Some(v),
        _ => f.cmn_skip_below = Some(v),
    }
    f
}

/// Every float the resolved config holds, for the "all finite" check.
fn floats(c: &RecognizerConfig) -> Vec<f32> {
    let d = &c.decoder;
    let mut v = vec![
        d.acoustic_scale,
        d.transition_scale,
        d.lm_weight,
        d.word_insertion_penalty,
        d.beam,
        d.word_end_beam,
        c.dither.unwrap_or(0.0),
        c.cmn_skip_below.unwrap_or(0.0),
    ];
    for r in &d.endpoint.rules {
        v.extend([r.min_trailing_silence_s, r.min_utterance_length_s]);
    }
    v
}

proptest! {
    /// Any f32 (every bit pattern: NaN payloads, infinities, subnormals)
    /// for any float flag: either refused, or a config whose floats are
    /// finite and which validates.
    #[test]
    fn any_f32_flag_is_refused_or_valid(i in 0usize..6, bits in any::<u32>()) {
        let v = f32::from_bits(bits);
        match float_flag(i, v).apply(RecognizerConfig::default()) {
            Ok(c) => {
                prop_assert!(v.is_finite());
                prop_assert!(floats(&c).iter().all(|x| x.is_finite()));
                prop_assert!(c.validate("x").is_ok());
            }
            Err(e) => prop_assert_eq!(e.exit_code(), 2),
        }
    }

    /// Any count for the count flags: zero refused, huge refused.
    #[test]
    fn any_count_flag_is_refused_or_valid(v in any::<usize>(), which in 0usize..2) {
        let mut f = RecognizerFlags::default();
        match which {
            0 => f.max_active = Some(v),
            _ => f.scorer_batch = Some(v),
        }
        let ok = f.apply(RecognizerConfig::default()).is_ok();
        // A scorer block of 0 is the kernels' own choice.
        let (lo, hi) = if which == 0 { (1, 10_000_000) } else { (0, 4096) };
        prop_assert_eq!(ok, (lo..=hi).contains(&v));
    }

    /// Any f32 written into a config file (RON) for any float field of the
    /// decoder, the endpoint rules, the front end options and the daemon.
    #[test]
    fn any_f32_in_a_config_file_is_refused_or_valid(field in 0usize..12, bits in any::<u32>()) {
        let v = f32::from_bits(bits);
        let x = format!("{v:?}");
        let rule = |cost: &str, len: &str| format!(
            "(decoder: (endpoint: (rules: [(must_contain_word: true, min_trailing_silence_s: 0.5, \
             max_relative_cost: {cost}, min_utterance_length_s: {len})])))"
        );
        let text = match field {
            0 => format!("(decoder: (acoustic_scale: {x}))"),
            1 => format!("(decoder: (transition_scale: {x}))"),
            2 => format!("(decoder: (lm_weight: {x}))"),
            3 => format!("(decoder: (word_insertion_penalty: {x}))"),
            4 => format!("(decoder: (beam: {x}))"),
            5 => format!("(decoder: (word_end_beam: {x}))"),
            6 => format!("(dither: Some({x}))"),
            7 => format!("(cmn_skip_below: Some({x}))"),
            8 => rule(&x, "0.0"),
            9 => rule("2.0", &x),
            10 => format!("(ring_seconds: {x})"),
            _ => format!("(device_timeout_s: {x})"),
        };
        let parsed = if field >= 10 {
            ListenConfig::from_ron(&text, "f.ron").map(|c| c.recognizer)
        } else {
            RecognizerConfig::from_ron(&text, "f.ron")
        };
        match parsed {
            Ok(c) => {
                prop_assert!(v.is_finite() || (field == 8 && v == f32::INFINITY), "{}", text);
                prop_assert!(floats(&c).iter().all(|x| x.is_finite()));
            }
            Err(e) => {
                prop_assert_eq!(e.exit_code(), 2);
                let msg = e.to_string();
                // Parse errors (e.g. RON's own float syntax) aside, the
                // message names the file and the setting.
                prop_assert!(msg.contains("f.ron"), "{}", msg);
            }
        }
    }
}

#[test]
fn the_issue_examples_exit_2_naming_the_setting() {
    for (flag, value) in [
        ("--lm-weight", "NaN"),
        ("--lm-weight", "inf"),
        ("--lm-weight", "-inf"),
        ("--lm-weight", "1e400"),
        ("--beam", "-1"),
        ("--beam", "0"),
        ("--max-active", "0"),
        ("--max-active", "-1"),
        ("--word-insertion-penalty", "NaN"),
        ("--transition-scale", "inf"),
        ("--dither", "-1"),
        ("--dither", "NaN"),
        ("--dither", "inf"),
        ("--scorer-batch", "-1"),
        ("--scorer-batch", "4097"),
        ("--scorer-batch", "18446744073709551616"),
    ] {
        let out = sparsa()
            .args(["transcribe", "--format", "text", flag, value, &clip()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(out.stdout.is_empty(), "{flag} {value} decoded");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(
            err.contains("must be in") || err.contains("not a whole number"),
            "{err}"
        );
    }
}

#[test]
fn config_files_are_checked_like_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("(decoder: (lm_weight: NaN))", "decoder.lm_weight"),
        ("(decoder: (beam: -1.0))", "decoder.beam"),
        ("(decoder: (max_active: 0))", "decoder.max_active"),
        (
            "(decoder: (word_insertion_penalty: inf))",
            "decoder.word_insertion_penalty",
        ),
        ("(dither: Some(-1.0))", "dither"),
        ("(scorer: (batch: 4097))", "scorer.batch"),
        (
            "(decoder: (endpoint: (rules: [(must_contain_word: true, min_trailing_silence_s: NaN, \
             max_relative_cost: 2.0, min_utterance_length_s: 0.0)])))",
            "decoder.endpoint.rules[0].min_trailing_silence_s",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let cfg = tmp.path().join(format!("c{i}.ron"));
        std::fs::write(&cfg, text).unwrap();
        let out = sparsa()
            .args(["transcribe", "--config", cfg.to_str().unwrap(), &clip()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains(field) && err.contains(&format!("c{i}.ron")),
            "{text}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // The daemon's config nests the same settings; it is refused before
        // any device is opened.
        let listen = tmp.path().join(format!("l{i}.ron"));
        std::fs::write(&listen, format!("(recognizer: {text})")).unwrap();
        let out = sparsa()
            .args(["listen", "--config", listen.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "listen {text}: {err}");
        assert!(err.contains(field), "listen {text}: {err}");
    }
}

#[test]
fn tools_and_trainer_flags_have_ranges_too() {
    let bad: [&[&str]; 6] = [
        &["sparsa", "bench", "--frames", "18446744073709551615"],
        &["sparsa", "bench", "--frames", "0"],
        &["sparsa", "bench", "--block", "0"],
        &["sparsa", "eval", "--threads", "0", "x"],
        &["sparsa-train", "am", "--learning-rate", "NaN"],
        &["sparsa-train", "am", "--dropout", "1.5"],
    ];
    for args in bad {
        let bin = match args[0] {
            "sparsa" => env!("CARGO_BIN_EXE_sparsa"),
            _ => env!("CARGO_BIN_EXE_sparsa-train"),
        };
        let out = Command::new(bin).args(&args[1..]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(args[2]), "{args:?}: {err}");
    }
}

#[test]
fn the_defaults_are_inside_their_ranges() {
    RecognizerConfig::default().validate("defaults").unwrap();
    ListenConfig::from_ron("()", "defaults").unwrap();
    DecoderConfig::tuned().check().unwrap();
}

/// Every range, as the row docs/reliability.md shows it: (flag, config
/// field, range). Built from the constants the code checks, so the table
/// cannot drift from them.
fn documented_ranges() -> Vec<(&'static str, &'static str, String)> {
    use sparsa::am::scorer::ScorerConfig;
    use sparsa::search::graph::EndpointConfig;
    use sparsa::train::flags::ranges as t;
    vec![
        (
            "--lm-weight",
            "decoder.lm_weight",
            DecoderConfig::LM_WEIGHT.to_string(),
        ),
        (
            "--word-insertion-penalty",
            "decoder.word_insertion_penalty",
            DecoderConfig::WORD_INSERTION_PENALTY.to_string(),
        ),
        (
            "--transition-scale",
            "decoder.transition_scale",
            DecoderConfig::TRANSITION_SCALE.to_string(),
        ),
        (
            "",
            "decoder.acoustic_scale",
            DecoderConfig::ACOUSTIC_SCALE.to_string(),
        ),
        (
            "--beam",
            "decoder.beam, decoder.word_end_beam",
            DecoderConfig::BEAM.to_string(),
        ),
        (
            "--max-active",
            "decoder.max_active",
            DecoderConfig::MAX_ACTIVE.to_string(),
        ),
        (
            "",
            "decoder.max_word_ends",
            DecoderConfig::MAX_WORD_ENDS.to_string(),
        ),
        (
            "",
            "endpoint rules: min_trailing_silence_s, min_utterance_length_s",
            EndpointConfig::SECONDS.to_string(),
        ),
        (
            "",
            "endpoint rules: max_relative_cost",
            EndpointConfig::RELATIVE_COST.to_string(),
        ),
        (
            "--scorer-batch",
            "scorer.batch",
            ScorerConfig::BATCH.to_string(),
        ),
        ("--dither", "dither", RecognizerConfig::DITHER.to_string()),
        (
            "--cmn-skip-below",
            "cmn_skip_below",
            RecognizerConfig::CMN_SKIP_BELOW.to_string(),
        ),
        ("", "ring_seconds", ListenConfig::RING_SECONDS.to_string()),
        (
            "",
            "stats_interval_s",
            ListenConfig::STATS_INTERVAL_S.to_string(),
        ),
        (
            "--device-timeout",
            "device_timeout_s",
            ListenConfig::DEVICE_TIMEOUT_S.to_string(),
        ),
        (
            "bench/analyze --frames",
            "",
            sparsa::tools::bench::BenchArgs::FRAMES.to_string(),
        ),
        (
            "sparsa-train --learning-rate",
            "",
            t::LEARNING_RATE.to_string(),
        ),
        ("sparsa-train --layers", "", t::LAYERS.to_string()),
        ("sparsa-train --units", "", t::UNITS.to_string()),
        ("sparsa-train --context", "", t::CONTEXT.to_string()),
        ("sparsa-train --batch", "", t::BATCH.to_string()),
        ("sparsa-train --dropout", "", t::DROPOUT.to_string()),
        ("serve --workers", "", ServeFlags::WORKERS.to_string()),
        (
            "serve --max-streams",
            "",
            ServeFlags::MAX_STREAMS.to_string(),
        ),
        ("serve --max-load", "", ServeFlags::MAX_LOAD.to_string()),
        (
            "serve --idle-timeout",
            "",
            ServeFlags::IDLE_TIMEOUT.to_string(),
        ),
        (
            "serve --stats-interval",
            "",
            ServeFlags::STATS_INTERVAL.to_string(),
        ),
    ]
}

#[test]
fn the_ranges_table_in_the_docs_matches_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reliability.md"))
        .unwrap();
    let rows: Vec<String> = documented_ranges()
        .into_iter()
        .map(|(flag, field, range)| {
            let cell = |s: &str| {
                if s.is_empty() {
                    "—".to_string()
                } else {
                    format!("`{s}`")
                }
            };
            format!("| {} | {} | {range} |", cell(flag), cell(field))
        })
        .collect();
    let missing: Vec<&String> = rows.iter().filter(|r| !doc.contains(r.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/reliability.md lacks these rows (the whole table:)\n{}",
        rows.join("\n")
    );
}
