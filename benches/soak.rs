//! Soak test: hours of real speech (speechocean762 utterances back to back,
//! 1.5 s of silence between them) through the recognizer, with the resident
//! memory sampled every second and every utterance checked for recognized
//! words (by the words' times, so a final's leading silence counts for
//! nothing).
//!
//!   cargo bench --bench soak -- pipeline --hours 2      # threaded pipeline, as fast as it goes
//!   cargo bench --bench soak -- listen --minutes 11     # `sparsa listen`, real time, PulseAudio
//!
//! Writes `soak-MODE.csv` (seconds, audio seconds, RSS kB) and
//! `soak-MODE.png` to `--out` (default `target/soak`) and prints the
//! figures: utterances fed, finals, utterances without a final, finals
//! spanning two utterances, RSS at mid-run and the growth over the second
//! half of the audio (also over the last 90%). Fails (exit 1) if an
//! utterance got no final, `listen` dropped audio, or memory grew by more
//! than 1 MB over the second half.
//! Under `cargo test` it runs a one-minute pipeline smoke test.

use sparsa::audio::MonoStream;
use sparsa::corpus::datadir::DataDir;
use sparsa::recognizer::{Event, Model, RecognizerConfig};
use sparsa::tools::plot::{line_chart, Chart, Series};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RATE: u32 = 16_000;
const SILENCE_S: f64 = 1.5;
/// Warm-up: the first half of the audio. Memory first grows in steps to
/// its high-water marks (the longest utterance so far, the most LM
/// histories alive at once), which can come well into the run; a leak shows
/// as growth over the whole second half.
const WARMUP_FRACTION: f64 = 0.5;
const MAX_GROWTH_KB: i64 = 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Utterance audio files of speechocean762 (train, dev, test), cycled until
/// `seconds` of audio (speech + silences) are planned.
fn playlist(seconds: f64) -> Vec<PathBuf> {
    let corpus = root().join("../shared/corpora/speechocean762");
    let mut files = Vec::new();
    for split in ["train", "dev", "test"] {
        let d = DataDir::open(&corpus.join(split)).expect("speechocean762 data dir");
        files.extend(d.utterances.into_iter().map(|u| u.audio));
    }
    // Plenty (utterances are 1-10 s); feeding stops at `seconds`.
    let n = (seconds / (1.0 + SILENCE_S)).ceil() as usize + 1;
    files.iter().cycle().take(n).cloned().collect()
}

/// Resident set size of a process, kB (0 if unreadable).
fn rss_kb(pid: &str) -> u64 {
    sparsa::recognizer::pipeline::resident_kb(pid).unwrap_or(0)
}

/// Samples RSS every second until `stop`; rows (wall s, audio s, kB) go
/// into a vector allocated up front so sampling itself does not grow memory.
/// With `stats`, it also drains the pipeline's latency samples, as the
/// daemon's stats report does.
fn sampler(
    pid: String,
    audio_samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    stats: Option<Arc<sparsa::recognizer::pipeline::Stats>>,
) -> std::thread::JoinHandle<Vec<(f64, f64, u64)>> {
    std::thread::spawn(move || {
        let mut rows = Vec::with_capacity(100_000);
        let t0 = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Some(s) = &stats {
                drop(s.take_latencies());
            }
            if rows.len() < rows.capacity() {
                rows.push((
                    t0.elapsed().as_secs_f64(),
                    audio_samples.load(Ordering::Relaxed) as f64 / RATE as f64,
                    rss_kb(&pid),
                ));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        rows
    })
}

/// Slack around an utterance when placing words in it, seconds (word
/// times are frame-accurate; `listen`'s stream clock is aligned to the
/// playback only to within tens of milliseconds).
const WORD_SLACK_S: f64 = 0.3;

/// Utterance spans (stream seconds, sorted) against recognized words
/// (final number, word midpoint): how many utterances got no word, and how
/// many finals hold words of more than one utterance (a missed endpoint).
fn coverage(utts: &[(f64, f64)], words: &[(u32, f64)]) -> (usize, usize) {
    let utt_of = |t: f64| {
        let i = utts.partition_point(|u| u.1 + WORD_SLACK_S < t);
        utts.get(i).filter(|u| u.0 - WORD_SLACK_S <= t).map(|_| i)
    };
    let mut covered = vec![false; utts.len()];
    let mut spans: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
    for &(f, t) in words {
        if let Some(i) = utt_of(t) {
            covered[i] = true;
            let e = spans.entry(f).or_insert((i, i));
            *e = (e.0.min(i), e.1.max(i));
        }
    }
    let missing = covered.iter().filter(|c| !**c).count();
    let merged = spans.values().filter(|(lo, hi)| lo != hi).count();
    (missing, merged)
}

struct Outcome {
    mode: &'static str,
    rows: Vec<(f64, f64, u64)>,
    utts: Vec<(f64, f64)>,
    /// Non-empty finals.
    finals: usize,
    /// (final number, word midpoint) of every recognized word.
    words: Vec<(u32, f64)>,
    audio_s: f64,
    wall_s: f64,
    /// Samples lost (listen: the daemon's final stats; pipeline: none can be).
    dropped: u64,
}

/// Feeds the playlist through `Pipeline` in-process as fast as it goes.
fn pipeline(seconds: f64) -> Outcome {
    let model = Arc::new(
        Model::load_with(
            &root().join("models/default"),
            None,
            &RecognizerConfig::default(),
        )
        .expect("models/default"),
    );
    let files = playlist(seconds);
    // Allocated up front: the sink must not grow the memory it measures.
    let words = Arc::new(Mutex::new((0u32, Vec::with_capacity(40 * files.len()))));
    let sink_words = words.clone();
    let (pipe, sender) = sparsa::recognizer::pipeline::Pipeline::start(
        model,
        sparsa::recognizer::pipeline::PipelineConfig::default(),
        move |e| {
            if let Event::Final { words, .. } = e {
                if !words.is_empty() {
                    let mut guard = sink_words.lock().unwrap();
                    let (n, w) = &mut *guard;
                    for x in words {
                        if w.len() < w.capacity() {
                            w.push((*n, 0.5 * (x.start_s + x.end_s) as f64));
                        }
                    }
                    *n += 1;
                }
            }
            Ok(())
        },
    )
    .expect("pipeline");
    let fed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sampler(
        "self".into(),
        fed.clone(),
        stop.clone(),
        Some(pipe.stats().clone()),
    );
    let t0 = Instant::now();
    let mut utts = Vec::with_capacity(files.len());
    let mut samples = 0u64;
    let target = (seconds * RATE as f64) as u64;
    let mut block = Vec::new();
    'files: for f in &files {
        let start = samples;
        let mut stream = MonoStream::open(f, None, RATE).expect("corpus audio");
        while stream.read_block(&mut block).expect("corpus audio") {
            let mut buf = sender.buffer();
            buf.extend_from_slice(&block);
            samples += buf.len() as u64;
            sender.send(buf, Instant::now()).expect("pipeline running");
            fed.store(samples, Ordering::Relaxed);
        }
        utts.push((start as f64 / RATE as f64, samples as f64 / RATE as f64));
        let mut silence = (SILENCE_S * RATE as f64) as usize;
        while silence > 0 {
            let n = silence.min(1600);
            let mut buf = sender.buffer();
            buf.resize(n, 0.0);
            sender.send(buf, Instant::now()).expect("pipeline running");
            samples += n as u64;
            silence -= n;
        }
        fed.store(samples, Ordering::Relaxed);
        if samples >= target {
            break 'files;
        }
    }
    sender.finish();
    pipe.join().expect("pipeline");
    stop.store(true, Ordering::Relaxed);
    let rows = rss.join().unwrap();
    let (finals, words) = words.lock().unwrap().clone();
    Outcome {
        mode: "pipeline",
        rows,
        utts,
        finals: finals as usize,
        words,
        audio_s: samples as f64 / RATE as f64,
        wall_s: t0.elapsed().as_secs_f64(),
        dropped: 0,
    }
}

/// Writes the playlist as one 16 kHz mono WAV and plays it in real time
/// into the private PulseAudio's null sink while `sparsa listen` captures
/// its monitor.
fn listen(seconds: f64, out: &Path) -> Outcome {
    let xdg = "/tmp/sparsa-xdg";
    let st = std::process::Command::new("sh")
        .arg(root().join("tests/scripts/pulse.sh"))
        .arg("start")
        .arg(std::process::id().to_string())
        .env("XDG_RUNTIME_DIR", xdg)
        .status()
        .expect("sh");
    assert!(st.success(), "could not start PulseAudio (run .ci/setup)");
    // Leading silence: capture settles before the first utterance.
    let lead = 2.0;
    let wav = std::env::temp_dir().join("sparsa-soak-listen-input.wav");
    let mut utts = Vec::new();
    {
        let mut pcm: Vec<i16> = vec![0; (lead * RATE as f64) as usize];
        let mut block = Vec::new();
        for f in playlist(seconds) {
            let start = pcm.len();
            let mut stream = MonoStream::open(&f, None, RATE).expect("corpus audio");
            while stream.read_block(&mut block).expect("corpus audio") {
                pcm.extend(block.iter().map(|&v| (v * 32767.0).round() as i16));
            }
            utts.push((start as f64 / RATE as f64, pcm.len() as f64 / RATE as f64));
            pcm.resize(pcm.len() + (SILENCE_S * RATE as f64) as usize, 0);
            if pcm.len() as f64 >= (seconds + lead) * RATE as f64 {
                break;
            }
        }
        let mut w = std::io::BufWriter::new(std::fs::File::create(&wav).expect("create wav"));
        let bytes = (pcm.len() * 2) as u32;
        w.write_all(b"RIFF").unwrap();
        w.write_all(&(36 + bytes).to_le_bytes()).unwrap();
        w.write_all(b"WAVEfmt ").unwrap();
        for v in [16u32, 0x0001_0001, RATE, RATE * 2, 0x0010_0002] {
            w.write_all(&v.to_le_bytes()).unwrap();
        }
        w.write_all(b"data").unwrap();
        w.write_all(&bytes.to_le_bytes()).unwrap();
        for s in pcm {
            w.write_all(&s.to_le_bytes()).unwrap();
        }
    }
    let log = out.join("soak-listen.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sparsa"))
        .args(["listen", "--format", "jsonl"])
        .current_dir(root())
        .env("XDG_RUNTIME_DIR", xdg)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("sparsa listen");
    let pid = child.id().to_string();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut finals, mut words) = (0u32, Vec::new());
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let ws = v["words"].as_array().cloned().unwrap_or_default();
            if v["type"] == "final" && !ws.is_empty() {
                for w in ws {
                    let (s, e) = (
                        w["start_s"].as_f64().unwrap_or(0.0),
                        w["end_s"].as_f64().unwrap_or(0.0),
                    );
                    words.push((finals, 0.5 * (s + e)));
                }
                finals += 1;
            }
        }
        (finals, words)
    });
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("listening")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "listen did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t_listening = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let played = Arc::new(AtomicU64::new(0));
    let rss = sampler(pid.clone(), played.clone(), stop.clone(), None);
    let t_play = Instant::now();
    // Stream time 0 is the first captured sample (just before the
    // "listening" line); the WAV starts playing at t_play.
    let offset = t_play.duration_since(t_listening).as_secs_f64();
    let clock = {
        let (played, stop) = (played.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                played.store(
                    (t_play.elapsed().as_secs_f64() * RATE as f64) as u64,
                    Ordering::Relaxed,
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let st = std::process::Command::new("paplay")
        .arg(&wav)
        .env("XDG_RUNTIME_DIR", xdg)
        .status()
        .expect("paplay");
    assert!(st.success(), "paplay failed");
    std::thread::sleep(Duration::from_secs(2));
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status();
    let (finals, words) = reader.join().unwrap();
    let code = child.wait().unwrap().code();
    stop.store(true, Ordering::Relaxed);
    let rows = rss.join().unwrap();
    clock.join().unwrap();
    assert_eq!(code, Some(0), "listen exit code; log in {}", log.display());
    let utts = utts.iter().map(|(s, e)| (s + offset, e + offset)).collect();
    let _ = std::fs::remove_file(&wav);
    let stats = std::fs::read_to_string(&log).unwrap_or_default();
    let dropped = stats
        .lines()
        .rev()
        .find(|l| l.contains("final_report=true"))
        .and_then(|l| l.split("dropped_samples=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the daemon's final stats line");
    Outcome {
        mode: "listen",
        rows,
        utts,
        finals: finals as usize,
        words,
        audio_s: t_play.elapsed().as_secs_f64(),
        wall_s: t0.elapsed().as_secs_f64(),
        dropped,
    }
}

/// Prints the figures, writes CSV + PNG; returns whether the bars are met
/// (the memory bar only with `memory_bar`: a smoke run has no steady state).
fn report(o: &Outcome, out: &Path, memory_bar: bool) -> bool {
    let csv: String = std::iter::once("wall_s,audio_s,rss_kb\n".to_string())
        .chain(
            o.rows
                .iter()
                .map(|(w, a, r)| format!("{w:.1},{a:.1},{r}\n")),
        )
        .collect();
    std::fs::write(out.join(format!("soak-{}.csv", o.mode)), csv).unwrap();
    // Warm-up and growth in audio time (the pipeline run goes faster than real time).
    let audio_end = o.rows.last().map_or(0.0, |r| r.1);
    let rss_from = |from: f64| {
        let after: Vec<u64> = o.rows.iter().filter(|r| r.1 >= from).map(|r| r.2).collect();
        let start = after.first().copied().unwrap_or(0);
        let max = after.iter().copied().max().unwrap_or(start);
        (start, max)
    };
    let (warm, max_after) = rss_from(WARMUP_FRACTION * audio_end);
    let (tenth, max_after_tenth) = rss_from(0.1 * audio_end);
    let first = o.rows.first().map_or(0, |r| r.2);
    let last = o.rows.last().map_or(0, |r| r.2);
    let growth = max_after as i64 - warm as i64;
    let (missing, merged) = coverage(&o.utts, &o.words);
    println!(
        "soak {}: {:.2} h of audio in {:.1} min wall; {} utterances, {} non-empty finals, {} utterances without a recognized word, {} finals with words of two utterances; RSS at start {:.1} MB, at mid-run {:.1} MB, max after {:.1} MB, at end {:.1} MB: growth over the second half {} kB (over the last 90%: {} kB); dropped samples {}",
        o.mode,
        o.audio_s / 3600.0,
        o.wall_s / 60.0,
        o.utts.len(),
        o.finals,
        missing,
        merged,
        first as f64 / 1024.0,
        warm as f64 / 1024.0,
        max_after as f64 / 1024.0,
        last as f64 / 1024.0,
        growth,
        max_after_tenth as i64 - tenth as i64,
        o.dropped
    );
    let points = o
        .rows
        .iter()
        .map(|(_, a, r)| (a / 60.0, *r as f64 / 1024.0))
        .collect();
    line_chart(
        &out.join(format!("soak-{}.png", o.mode)),
        &Chart {
            title: &format!(
                "sparsa {}: resident memory over {:.1} h of speech",
                o.mode,
                o.audio_s / 3600.0
            ),
            x_label: "audio minutes",
            y_label: "RSS MB",
            y_range: None,
        },
        &[Series {
            label: format!("RSS ({} utterances, {} finals)", o.utts.len(), o.finals),
            points,
        }],
    )
    .unwrap();
    missing == 0 && o.dropped == 0 && (growth <= MAX_GROWTH_KB || !memory_bar)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/soak"));
    std::fs::create_dir_all(&out).unwrap();
    let outcome = if !bench {
        // `cargo test`: a one-minute smoke run of the pipeline mode.
        pipeline(60.0)
    } else if args.iter().any(|a| a == "listen") {
        listen(value("--minutes").unwrap_or(12.0) * 60.0, &out)
    } else {
        pipeline(value("--hours").unwrap_or(2.0) * 3600.0)
    };
    let ok = report(&outcome, &out, bench);
    std::io::stdout().flush().unwrap();
    if !ok {
        eprintln!(
            "soak {}: FAILED (an utterance without a final, or memory grew)",
            outcome.mode
        );
        std::process::exit(1);
    }
}
