//! Loads an ARPA LM the two ways the library can and measures it: time,
//! peak memory, bytes per n-gram and lookup speed.
//!
//!   cargo run --release --example lm_load -- models/general/lm.arpa.gz
//!
//! `from_arpa` parses text read whole (what `sparsa transcribe --lm` did
//! until `NgramLm::load`); `load` streams the file line by line. Each runs
//! in a fresh process (`--only text|stream`) so peak RSS is its own.

use sparsa::search::lm::NgramLm;
use std::path::Path;
use std::time::Instant;

/// VmHWM (peak RSS) and VmRSS of this process, kB.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: lm_load FILE.arpa [--only text|stream]");
        std::process::exit(2);
    };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let Some(only) = only else {
        // Run each way in its own process.
        let me = std::env::current_exe().expect("own path");
        for way in ["text", "stream"] {
            let status = std::process::Command::new(&me)
                .args([path.as_str(), "--only", way])
                .status()
                .expect("run myself");
            assert!(status.success());
        }
        return;
    };
    let (hwm0, _) = rss_kb();
    let t0 = Instant::now();
    let lm = if only == "text" {
        let text = sparsa::bounded::read_text(Path::new(path), sparsa::bounded::LM).unwrap();
        let read = t0.elapsed().as_secs_f64();
        let lm = NgramLm::from_arpa(&text, path).unwrap();
        println!(
            "from_arpa: read {:.2} s + parse {:.2} s",
            read,
            t0.elapsed().as_secs_f64() - read
        );
        lm
    } else {
        let lm = NgramLm::load(Path::new(path)).unwrap();
        println!("load (streamed): {:.2} s", t0.elapsed().as_secs_f64());
        lm
    };
    let (hwm, rss) = rss_kb();
    let counts = lm.counts();
    let n: usize = counts.iter().sum();
    println!(
        "  n-grams {counts:?} = {n}; model {:.1} MB = {:.1} bytes per n-gram; process peak RSS {} MB (before {} MB), now {} MB",
        lm.memory_bytes() as f64 / 1e6,
        lm.memory_bytes() as f64 / n as f64,
        hwm >> 10,
        hwm0 >> 10,
        rss >> 10
    );
    if only == "stream" {
        // Lookup speed: every word after pseudo-random two-word histories.
        let v = lm.words().len() as u32;
        let mut x = 12345u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((x >> 33) % v as u64) as u32
        };
        let t = Instant::now();
        let mut sum = 0.0f64;
        let mut calls = 0u64;
        let mut worst = 0.0f64; // the largest |sum over words of p(w | h) - 1|
        let mut histories: Vec<Vec<u32>> = (0..20).map(|_| vec![next(), next()]).collect();
        // Some histories the model knows, if it has these words.
        for h in [
            &["<s>"][..],
            &["<s>", "THE"],
            &["OF", "THE"],
            &["IT", "WAS"],
            &["THE"],
        ] {
            if let Some(ids) = h.iter().map(|w| lm.id(w)).collect::<Option<Vec<_>>>() {
                histories.push(ids);
            }
        }
        for h in &histories {
            let mut total = 0.0f64;
            for w in 0..v {
                let p = lm.log10_prob(h, w) as f64;
                sum += p;
                calls += 1;
                if lm.word(w) != "<s>" {
                    total += 10f64.powf(p);
                }
            }
            worst = worst.max((total - 1.0).abs());
        }
        println!(
            "  log10_prob: {:.0} ns per call ({calls} calls, checksum {sum:.1}); over {} histories, the sums of p(w | h) differ from 1 by at most {worst:.1e}",
            t.elapsed().as_secs_f64() * 1e9 / calls as f64,
            histories.len()
        );
    }
}
