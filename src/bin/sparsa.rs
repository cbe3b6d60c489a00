//! `sparsa`: the recognizer command line. Parses arguments, installs logging,
//! calls the library and maps errors to exit codes (0 ok, 1 runtime fault,
//! 2 bad input).

mod common;

// Debug builds (the ones the tests run) abort if the audio callback
// allocates; the library only marks the callback, the binary checks it.
#[cfg(debug_assertions)]
#[global_allocator]
static ALLOC_GUARD: sparsa::live::alloc_guard::Guarded = sparsa::live::alloc_guard::Guarded;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sparsa::am::scorer::ScorerPath;
use sparsa::audio::{MonoStream, RawFormat};
use sparsa::features::frontend::{CmnConfig, Frontend, FrontendConfig};
use sparsa::recognizer::pipeline::{Pipeline, PipelineConfig};
use sparsa::recognizer::{Event, Model, Recognizer, RecognizerConfig};
use sparsa::tools::feature_dump::{FeatureFormat, FeatureWriter};
use std::io::Write;
use std::path::PathBuf;

/// sparsa: streaming speech recognition with a deep rectifier DNN-HMM.
#[derive(Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compute log-mel filterbank features of a WAV/FLAC/raw file or stdin.
    ///
    /// Reads the input as it arrives (a pipe is never read whole), downmixes
    /// to mono, resamples to --rate and prints one frame per line. These are
    /// exactly the features the recognizer and the trainer compute.
    ///
    /// Examples:
    ///   sparsa features clip.flac
    ///   sox clip.wav -t wav - | sparsa features -
    ///   arecord -f S16_LE -r 16000 | sparsa features - --cmn
    ///   sparsa features --raw-rate 16000 audio.s16 -o feats.npy --format npy
    #[command(verbatim_doc_comment)]
    Features(FeaturesArgs),
    /// Transcribe a WAV/FLAC/raw file or stdin as it is read.
    ///
    /// Audio streams through front end, DNN scorer and decoder while it
    /// arrives: partial results appear before the input ends, and an
    /// endpoint (silence after speech, or 20 s) closes each utterance.
    /// Prints JSON Lines events ({"type":"partial"|"final",...}) or, with
    /// --format text, one line per final result.
    ///
    /// Examples:
    ///   sparsa transcribe tests/data/so762_000490017.flac
    ///   sox talk.wav -t wav - | sparsa transcribe - --format text
    ///   arecord -f S16_LE -r 16000 | sparsa transcribe -
    #[command(verbatim_doc_comment)]
    Transcribe(TranscribeArgs),
    /// Decode a Kaldi data dir and score it: WER (sub/del/ins), SER, RTF.
    ///
    /// Each utterance is decoded as one utterance (no endpointing). Writes
    /// the hypotheses in Kaldi `text` format with --hyp.
    Eval(EvalArgs),
    /// Hidden-unit sparsity and dispersion of models on real speech, as in
    /// Maas et al. (2013): are rectifier codes sparse yet spread over units?
    ///
    /// Runs each model's f32 network over --frames frames of the data dir
    /// (whole utterances in a fixed pseudo-random order) and, per hidden
    /// layer, measures each unit's activation probability P(output > 0)
    /// (for leaky ReLU and tanh "active" means > 0 too; exact zeros are
    /// counted separately), population sparsity per frame (mean, std,
    /// histogram), lifetime sparsity, dead and always-on units, and the
    /// dispersion of the activation probabilities (coefficient of
    /// variation; entropy normalized to 1 = evenly spread).
    /// Writes OUT/layers.csv, OUT/units.csv (per unit: activation probability
    /// and lifetime sparsity), OUT/population_sparsity.csv (histogram per
    /// layer), OUT/activation_probability.png
    /// (last hidden layer, sorted, all models on one axis: the paper's
    /// figure) and OUT/population_sparsity.png.
    ///
    /// Example:
    ///   sparsa analyze models/relu models/leaky models/tanh \
    ///     ../shared/corpora/speechocean762/dev --out analysis
    #[command(verbatim_doc_comment)]
    Analyze(AnalyzeArgs),
    /// Print what a model is and where it came from: shape, front end,
    /// training data, recipe, and the per-epoch metrics of its training.
    ModelInfo {
        /// Model folder (containing am.ron) or model file.
        #[arg(default_value = "models/default")]
        model: PathBuf,
    },
    /// Measure scorer inference cost: ReLU vs leaky ReLU vs tanh, f32 vs
    /// int8 vs int8-sparse, on real speech, one thread; prints Markdown.
    ///
    /// For each model: µs per frame at batch 1 (median, p99), frames/s,
    /// scorer RTF, block throughput, speed-up against f32 tanh, GOPS against
    /// the measured int8 peak of one core, and hidden-layer sparsity.
    ///
    /// Examples:
    ///   sparsa bench
    ///   sparsa bench --model models/relu --model models/tanh --frames 5000
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),
    /// Recognize live audio from an input device until Ctrl-C or SIGTERM.
    ///
    /// Capture (cpal) → front end → scorer → decoder → output, each on its
    /// own thread. Events go to stdout as JSON Lines and, with --socket, to
    /// every reader of a Unix socket. Ctrl-C / SIGTERM finalizes the current
    /// utterance and exits 0. Exit codes: 2 bad config/model/device name,
    /// 3 the audio device stopped delivering (systemd restarts on it).
    ///
    /// Examples:
    ///   sparsa listen --list-devices
    ///   sparsa listen --device alsa:default --format text
    ///   sparsa listen --config /etc/sparsa/sparsa.ron --socket /run/sparsa/events.sock
    #[command(verbatim_doc_comment)]
    Listen(ListenArgs),
}

#[derive(Args)]
struct ListenArgs {
    /// List input devices (id, default format, description) and exit.
    #[arg(long)]
    list_devices: bool,
    /// Input device id from --list-devices [default: the default input].
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Model folder [default: models/default, or the config's `model`].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// RON config file (fields in the README's Operations section); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also serve events on this Unix socket (mode 0660).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Do not write events to stdout.
    #[arg(long)]
    no_stdout: bool,
    /// Output on stdout: JSON Lines events, or plain text (finals only).
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    format: OutputFormat,
}

#[derive(Args)]
struct BenchArgs {
    /// Model folder (repeatable; default: models/relu, models/leaky, models/tanh).
    #[arg(long, value_name = "DIR")]
    model: Vec<PathBuf>,
    /// Real speech to score (repeated to --frames).
    #[arg(
        long,
        default_value = "tests/data/so762_000490017.flac",
        value_name = "FILE"
    )]
    audio: PathBuf,
    /// Frames timed per model and path.
    #[arg(long, default_value_t = 3000)]
    frames: usize,
    /// Frames per call in the block-throughput measurement.
    #[arg(long, default_value_t = 8)]
    block: usize,
}

#[derive(Args)]
struct FeaturesArgs {
    /// Audio file (WAV, FLAC, or raw s16le with --raw-rate), or `-` for stdin.
    input: PathBuf,
    /// Treat the input as headerless little-endian 16-bit PCM at this rate (Hz).
    #[arg(long, value_name = "HZ")]
    raw_rate: Option<u32>,
    /// Channels of the raw input (interleaved).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "raw_rate")]
    raw_channels: u16,
    /// Front-end settings as a RON `FrontendConfig` file (overrides --rate/--mel-bins/--cmn).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rate the features are computed at; input is resampled to it (Hz).
    #[arg(long, value_name = "HZ", default_value_t = 16_000)]
    rate: u32,
    /// Number of mel filters.
    #[arg(long, value_name = "N", default_value_t = 40)]
    mel_bins: usize,
    /// Apply online cepstral mean normalization (600-frame causal window) as
    /// the recognizer does; off by default, so raw log-mel energies are printed.
    #[arg(long)]
    cmn: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FeatureFormat::Text)]
    format: FeatureFormat,
    /// Write to this file instead of stdout (required for npy).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct DecodeArgs {
    /// Model folder (am.ron, lexicon.txt, lm.arpa).
    #[arg(long, default_value = "models/default", value_name = "DIR")]
    model: PathBuf,
    /// ARPA language model to use instead of the model folder's lm.arpa.
    #[arg(long, value_name = "FILE")]
    lm: Option<PathBuf>,
    /// Settings as RON: `(decoder: (lm_weight: 1.0, beam: 13.0, ...),
    /// scorer: (path: r#int8-sparse, batch: 1))`; every field optional, unknown
    /// fields rejected. Flags below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// LM weight (relative to an acoustic scale of 0.1).
    #[arg(long)]
    lm_weight: Option<f32>,
    /// Word insertion penalty (log domain; negative = fewer words).
    #[arg(long, allow_hyphen_values = true)]
    word_insertion_penalty: Option<f32>,
    /// Scale on HMM transition log-probabilities.
    #[arg(long)]
    transition_scale: Option<f32>,
    /// Search beam (scaled log domain).
    #[arg(long)]
    beam: Option<f32>,
    /// Maximum active HMM states per frame.
    #[arg(long)]
    max_active: Option<usize>,
    /// Network arithmetic [default: auto = int8-sparse for ReLU, int8 for
    /// leaky/tanh, f32 when the model has no int8 tensors].
    #[arg(long, value_enum)]
    scorer: Option<ScorerPath>,
    /// Most frames per network call [default: 8; 1 = lowest latency when
    /// frames queue up; live audio is scored as each frame arrives anyway].
    #[arg(long, value_name = "FRAMES")]
    scorer_batch: Option<usize>,
    /// Dither added before the front end, int16 units [default: 1.0; 0 = off].
    #[arg(long)]
    dither: Option<f32>,
    /// Frames with a mean log-mel value below this stay out of the online
    /// CMN statistics, so digital silence does not shift the speech after
    /// it [default: 8.0; dithered digital silence is about 4, speech 10–20].
    #[arg(long, value_name = "LOGMEL")]
    cmn_skip_below: Option<f32>,
}

impl DecodeArgs {
    fn load(&self) -> anyhow::Result<std::sync::Arc<Model>> {
        let mut rc = match &self.config {
            Some(p) => RecognizerConfig::load(p)?,
            None => RecognizerConfig::default(),
        };
        if let Some(v) = self.scorer {
            rc.scorer.path = v;
        }
        if let Some(v) = self.scorer_batch {
            rc.scorer.batch = v;
        }
        if let Some(v) = self.dither {
            rc.dither = Some(v);
        }
        if let Some(v) = self.cmn_skip_below {
            rc.cmn_skip_below = Some(v);
        }
        let cfg = &mut rc.decoder;
        if let Some(v) = self.lm_weight {
            cfg.lm_weight = v;
        }
        if let Some(v) = self.word_insertion_penalty {
            cfg.word_insertion_penalty = v;
        }
        if let Some(v) = self.transition_scale {
            cfg.transition_scale = v;
        }
        if let Some(v) = self.beam {
            cfg.beam = v;
        }
        if let Some(v) = self.max_active {
            cfg.max_active = v;
        }
        Ok(std::sync::Arc::new(Model::load_with(
            &self.model,
            self.lm.as_deref(),
            &rc,
        )?))
    }
}

#[derive(Args)]
struct TranscribeArgs {
    /// Audio file (WAV, FLAC, or raw s16le with --raw-rate), or `-` for stdin.
    input: PathBuf,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Treat the input as headerless little-endian 16-bit PCM at this rate (Hz).
    #[arg(long, value_name = "HZ")]
    raw_rate: Option<u32>,
    /// Output: JSON Lines events, or plain text (one line per final result).
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    format: OutputFormat,
    /// Run every stage on this thread (the reference the threaded pipeline
    /// is tested against) instead of one thread per stage.
    #[arg(long)]
    single_threaded: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Jsonl,
    Text,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Model folders (or am.ron files), then the Kaldi data dir to run them on.
    #[arg(required = true, num_args = 2.., value_name = "MODEL... DATA_DIR")]
    paths: Vec<PathBuf>,
    /// Frames to analyze.
    #[arg(long, default_value_t = 10_000)]
    frames: usize,
    /// Output folder for the CSV files and plots (created).
    #[arg(long, default_value = "analysis", value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    /// Kaldi data dir (wav.scp, text, utt2spk).
    data: PathBuf,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Write hypotheses here in Kaldi `text` format.
    #[arg(long, value_name = "FILE")]
    hyp: Option<PathBuf>,
    /// Also print WER per speaker.
    #[arg(long)]
    per_speaker: bool,
    /// Decode only the first N utterances.
    #[arg(long, value_name = "N")]
    max_utts: Option<usize>,
}

fn main() {
    common::init_logging();
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // The recognizer is one stream per thread; the f32 path's GEMM must
        // not fan out behind its back (and benchmarks measure one core).
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Features(args) => features(args),
        Command::Transcribe(args) => transcribe(args),
        Command::Eval(args) => eval(args),
        Command::ModelInfo { model } => model_info(&model),
        Command::Analyze(args) => analyze(args),
        Command::Bench(args) => bench(args),
        Command::Listen(args) => listen(args),
    };
    if let Err(err) = result {
        std::process::exit(common::report("sparsa", &err));
    }
}

/// Exit code when the audio device stops delivering.
const EXIT_DEVICE_LOST: i32 = 3;

fn listen(args: ListenArgs) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    if args.list_devices {
        for d in sparsa::live::capture::list_devices()? {
            println!(
                "{} {:<24} {:<24} {}",
                if d.is_default { "*" } else { " " },
                d.id,
                d.default_config,
                d.description
            );
        }
        return Ok(());
    }
    let mut cfg = match &args.config {
        Some(p) => sparsa::live::config::ListenConfig::load(p)?,
        None => sparsa::live::config::ListenConfig::default(),
    };
    if let Some(m) = args.model {
        cfg.model = m;
    }
    if args.device.is_some() {
        cfg.device = args.device;
    }
    if args.socket.is_some() {
        cfg.socket = args.socket;
    }
    if args.no_stdout {
        cfg.stdout = false;
    }
    let model = Arc::new(Model::load_with(&cfg.model, None, &cfg.recognizer)?);
    let rate = model.am.frontend.config().sample_rate_hz;
    let broadcaster = match &cfg.socket {
        Some(p) => Some(Arc::new(sparsa::live::socket::Broadcaster::bind(p)?)),
        None => None,
    };
    let (to_stdout, format, subs) = (cfg.stdout, args.format, broadcaster.clone());
    let (pipeline, sender) = Pipeline::start(model.clone(), PipelineConfig::default(), move |e| {
        if let Some(b) = &subs {
            b.publish(
                &serde_json::to_string(e)?,
                matches!(e, Event::Partial { .. }),
            );
        }
        if to_stdout {
            write_event(&mut std::io::stdout().lock(), format, e)?;
        }
        Ok(())
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First signal: finalize and exit 0. A second one (say the output is
    // stuck and the flush cannot finish): exit at once.
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot install the signal handler: {e}"))?;
    let capture = sparsa::live::capture::Capture::start(
        cfg.device.as_deref(),
        rate,
        cfg.ring_seconds,
        sender,
        stop.clone(),
    )?;
    let lookahead_ms = 1e3 * sparsa::recognizer::AcousticStage::new(model.clone()).latency_s();
    tracing::info!(
        device = %capture.description,
        model = %cfg.model.display(),
        scorer = model.scoring.path.name(),
        declared_latency_ms = format!(
            "device block 20, front end + network look-ahead {lookahead_ms:.0}, decoder 0"
        ),
        "listening"
    );
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let interval = Duration::from_secs_f32(cfg.stats_interval_s);
    let stats = pipeline.stats().clone();
    let cap_stats = capture.stats.clone();
    let report = |queues: [usize; 3], final_report: bool| {
        let audio_s = stats.samples.load(Ordering::Relaxed) as f64 / rate as f64;
        let busy: Vec<f64> = stats
            .busy_ns
            .iter()
            .map(|b| b.load(Ordering::Relaxed) as f64 * 1e-9)
            .collect();
        let (all, finals) = stats.take_latencies();
        let fmt = |v: Vec<f32>| {
            sparsa::recognizer::pipeline::percentiles(v)
                .map(|(a, b, n)| format!("p50 {a:.1} p99 {b:.1} n {n}"))
                .unwrap_or_else(|| "none".into())
        };
        let (lat, lat_final) = (fmt(all), fmt(finals));
        tracing::info!(
            audio_s = format!("{audio_s:.1}"),
            rtf = format!("{:.4}", busy.iter().sum::<f64>() / audio_s.max(1e-9)),
            rtf_stages = format!(
                "frontend {:.4} scorer {:.4} decoder {:.4}",
                busy[0] / audio_s.max(1e-9),
                busy[1] / audio_s.max(1e-9),
                busy[2] / audio_s.max(1e-9)
            ),
            queues = ?queues,
            dropped_samples = cap_stats.dropped.load(Ordering::Relaxed),
            lost_upstream = cap_stats.lost_upstream.load(Ordering::Relaxed),
            latency_ms = %lat,
            final_latency_ms = %lat_final,
            subscribers = broadcaster.as_ref().map_or(0, |b| b.subscribers()),
            rss_kb = sparsa::recognizer::pipeline::resident_kb("self").unwrap_or(0),
            final_report,
            "stats"
        );
    };
    let mut device_lost = false;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        if !capture.is_running() {
            break; // the output failed (e.g. stdout closed); join() says why
        }
        let silent = capture.since_last_callback();
        if capture.stats.device_lost.load(Ordering::Relaxed)
            || (started.elapsed() > Duration::from_secs(5) && silent > Duration::from_secs(3))
        {
            tracing::error!(
                device = %capture.description,
                silent_s = silent.as_secs_f32(),
                errors = capture.stats.errors.load(Ordering::Relaxed),
                "the audio device stopped delivering; finalizing and exiting with code {EXIT_DEVICE_LOST}"
            );
            device_lost = true;
            stop.store(true, Ordering::SeqCst);
        }
        if !interval.is_zero() && last_stats.elapsed() >= interval {
            last_stats = Instant::now();
            report(pipeline.queue_depths(), false);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let pumped = capture.finish();
    let joined = pipeline.join();
    report([0; 3], true);
    drop(broadcaster);
    match joined {
        Err(sparsa::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    if device_lost {
        std::process::exit(EXIT_DEVICE_LOST);
    }
    match pumped {
        Err(sparsa::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        other => Ok(other?),
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let dirs = if args.model.is_empty() {
        ["relu", "leaky", "tanh"]
            .iter()
            .map(|n| PathBuf::from("models").join(n))
            .filter(|p| p.is_dir())
            .collect()
    } else {
        args.model
    };
    if dirs.is_empty() {
        anyhow::bail!(sparsa::Error::config(
            "bench",
            "no models/ folder here; pass --model DIR"
        ));
    }
    let mut models = Vec::new();
    for d in &dirs {
        let name = d.file_name().map_or_else(
            || d.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        models.push((name, sparsa::am::model::AcousticModel::load(d)?));
    }
    eprintln!("measuring {} models (about 10 s each)...", models.len());
    let report = sparsa::tools::bench::run(
        &models,
        &args.audio,
        sparsa::tools::bench::BenchConfig {
            frames: args.frames.max(1),
            block: args.block.max(1),
        },
    )?;
    print!("{}", report.markdown());
    Ok(())
}

/// Writes one event in the chosen format.
fn write_event(out: &mut impl Write, format: OutputFormat, e: &Event) -> std::io::Result<()> {
    match (format, e) {
        (OutputFormat::Jsonl, _) => writeln!(out, "{}", serde_json::to_string(e)?)?,
        (OutputFormat::Text, Event::Final { text, .. }) => writeln!(out, "{text}")?,
        (OutputFormat::Text, Event::Partial { .. }) => {}
        (OutputFormat::Text, Event::Gap { start_s, end_s, .. }) => {
            tracing::warn!("audio lost from {start_s:.2} s to {end_s:.2} s")
        }
    }
    out.flush()
}

fn transcribe(args: TranscribeArgs) -> anyhow::Result<()> {
    let model = args.decode.load()?;
    let rate = model.am.frontend.config().sample_rate_hz;
    let raw = args.raw_rate.map(|rate_hz| RawFormat {
        rate_hz,
        channels: 1,
    });
    let mut stream = MonoStream::open(&args.input, raw, rate)?;
    let format = args.format;
    if args.single_threaded {
        let mut rec = Recognizer::new(model);
        let (mut events, mut block) = (Vec::new(), Vec::new());
        let mut out = std::io::stdout().lock();
        let result = loop {
            match stream.read_block(&mut block) {
                Ok(true) => rec.accept_samples(&block, &mut events),
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            for e in events.drain(..) {
                write_event(&mut out, format, &e)?;
            }
        };
        // Keep what was recognized before a fault.
        rec.input_finished(&mut events);
        for e in events.drain(..) {
            write_event(&mut out, format, &e)?;
        }
        return Ok(result?);
    }
    let (pipeline, sender) = Pipeline::start(model, PipelineConfig::default(), move |e| {
        write_event(&mut std::io::stdout().lock(), format, e)
    })?;
    let mut result = Ok(());
    loop {
        let mut block = sender.buffer();
        match stream.read_block(&mut block) {
            Ok(true) => {
                if sender.send(block, std::time::Instant::now()).is_err() {
                    break; // the output failed; join() says why
                }
            }
            Ok(false) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Flushes: what was recognized before a fault is still written.
    sender.finish();
    match pipeline.join() {
        Err(sparsa::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Ok(())
        }
        other => other?,
    }
    Ok(result?)
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    use sparsa::corpus::wer::{align, ErrorCounts};
    let model = args.decode.load()?;
    let data = sparsa::corpus::datadir::DataDir::open(&args.data)?;
    let mut utts = data.utterances;
    if let Some(n) = args.max_utts {
        utts.truncate(n);
    }
    let cpu0 = cpu_seconds();
    let wall0 = std::time::Instant::now();
    let mut total = ErrorCounts::default();
    let mut per_spk: std::collections::BTreeMap<String, ErrorCounts> = Default::default();
    let mut hyps = String::new();
    let mut audio_s = 0.0f64;
    for u in &utts {
        let (text, secs) = sparsa::recognizer::decode_file(&model, &u.audio)?;
        audio_s += secs;
        let hyp: Vec<&str> = text.split_whitespace().collect();
        let c = align(&u.words, &hyp);
        total.add(c);
        per_spk.entry(u.speaker.clone()).or_default().add(c);
        hyps.push_str(&format!("{} {}\n", u.id, text));
    }
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    if let Some(p) = &args.hyp {
        std::fs::write(p, &hyps).with_context(|| format!("writing {}", p.display()))?;
    }
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "%WER {:.2} [ {} / {}, {} ins, {} del, {} sub ]  %SER {:.2} [ {} / {} ]",
        total.wer(),
        total.errors(),
        total.ref_words,
        total.ins,
        total.del,
        total.sub,
        total.ser(),
        total.sentence_errors,
        total.sentences
    )?;
    writeln!(
        o,
        "audio {audio_s:.1} s, CPU {cpu:.1} s, wall {wall:.1} s, RTF {:.4} (CPU) {:.4} (wall)",
        cpu / audio_s.max(1e-9),
        wall / audio_s.max(1e-9)
    )?;
    if args.per_speaker {
        for (spk, c) in &per_spk {
            writeln!(
                o,
                "speaker {spk}: %WER {:.2} [ {} / {} ]",
                c.wer(),
                c.errors(),
                c.ref_words
            )?;
        }
    }
    Ok(())
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    use sparsa::tools::analyze::{hidden_stats, layer_csv_rows, LAYER_CSV_HEADER};
    // INVARIANT: clap requires at least two paths.
    let (data_path, models) = args.paths.split_last().expect("two paths");
    let data = sparsa::corpus::datadir::DataDir::open(data_path)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut layers_csv = format!("{LAYER_CSV_HEADER}\n");
    let mut units_csv = String::from("model,activation,layer,unit,active_prob,lifetime_sparsity\n");
    let mut hist_csv =
        String::from("model,activation,layer,population_sparsity_from,to,fraction_of_frames\n");
    let mut last = Vec::new();
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "| model | layer | units | mean population sparsity % (std) | exact zeros % | dead | always on | dispersion CV | dispersion entropy |\n|---|---|---|---|---|---|---|---|---|"
    )?;
    for path in models {
        let am = sparsa::am::model::AcousticModel::load(path)?;
        let stats = hidden_stats(&am, &data, args.frames)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let act = am.network.activation.name();
        layers_csv.push_str(&layer_csv_rows(&name, act, &stats));
        for (l, s) in stats.iter().enumerate() {
            for (u, p) in s.active_prob.iter().enumerate() {
                units_csv.push_str(&format!(
                    "{name},{act},{},{u},{p:.5},{:.5}\n",
                    l + 1,
                    1.0 - p
                ));
            }
            let bins = sparsa::tools::analyze::BINS;
            for (b, f) in s.population_histogram(bins).iter().enumerate() {
                hist_csv.push_str(&format!(
                    "{name},{act},{},{:.2},{:.2},{f:.5}\n",
                    l + 1,
                    b as f64 / bins as f64,
                    (b + 1) as f64 / bins as f64
                ));
            }
            writeln!(
                o,
                "| {name} ({act}) | {} | {} | {:.1} ({:.1}) | {:.1} | {} | {} | {:.3} | {:.3} |",
                l + 1,
                s.active_prob.len(),
                100.0 * s.mean_population_sparsity(),
                100.0 * s.std_population_sparsity(),
                100.0 * s.exact_zeros,
                s.dead(),
                s.always_on(),
                s.dispersion_cv(),
                s.dispersion_entropy()
            )?;
        }
        // INVARIANT: hidden_stats fails for a network without hidden layers.
        let s = stats.last().expect("a hidden layer").clone();
        last.push((format!("{name} ({act}, {} frames)", s.frames), s));
    }
    let write = |file: &str, text: &str| {
        let p = args.out.join(file);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("layers.csv", &layers_csv)?;
    write("units.csv", &units_csv)?;
    write("population_sparsity.csv", &hist_csv)?;
    let sorted: Vec<(String, Vec<f64>)> = last
        .iter()
        .map(|(n, s)| (n.clone(), s.sorted_active_prob()))
        .collect();
    sparsa::tools::analyze::plot_activation_probability(
        &args.out.join("activation_probability.png"),
        &sorted,
    )?;
    let refs: Vec<(String, &sparsa::tools::analyze::LayerStats)> =
        last.iter().map(|(n, s)| (n.clone(), s)).collect();
    sparsa::tools::analyze::plot_population_sparsity(
        &args.out.join("population_sparsity.png"),
        &refs,
    )?;
    eprintln!(
        "wrote layers.csv, units.csv, population_sparsity.csv, activation_probability.png, population_sparsity.png to {}",
        args.out.display()
    );
    Ok(())
}

fn model_info(path: &std::path::Path) -> anyhow::Result<()> {
    let m = sparsa::am::model::AcousticModel::load(path)?;
    let n = &m.network;
    let p = &m.provenance;
    let fe = m.frontend.config();
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(o, "model:        {}", path.display());
    let _ = writeln!(
        o,
        "format:       {} v{}",
        sparsa::am::model::FORMAT,
        sparsa::am::model::VERSION
    );
    let _ = writeln!(
        o,
        "network:      {} x {} {} hidden, input {} ({} frames x {}), {} outputs, {} parameters",
        n.hidden_layers(),
        n.layers.first().map_or(0, |l| l.b.len()),
        n.activation.name(),
        n.input_dim(),
        n.splice.width(),
        n.feat_dim,
        n.num_outputs(),
        n.num_params()
    );
    let _ = writeln!(
        o,
        "front end:    {} Hz, {} mel bins, {} ms / {} ms, CMN window {}",
        fe.sample_rate_hz,
        fe.num_mel_bins,
        fe.frame_length_ms,
        fe.frame_shift_ms,
        fe.cmn.as_ref().map_or("off".to_string(), |c| format!(
            "{} frames, prior {}",
            c.window_frames,
            if c.prior_mean.is_some() {
                "from training"
            } else {
                "none"
            }
        ))
    );
    let context = match m.topology.num_context_pdfs() {
        0 => "monophone".to_string(),
        n => format!("{n} of them word-internal context-dependent"),
    };
    let _ = writeln!(
        o,
        "phones:       {} ({} pdfs, {context}; {} states each)",
        m.phones.len(),
        m.topology.num_pdfs(),
        m.topology.states_per_phone
    );
    let _ = writeln!(
        o,
        "trained on:   {} ({} utterances, {} frames), dev {}",
        p.train_data.join(", "),
        p.train_utterances,
        p.train_frames,
        p.dev_data
    );
    let _ = writeln!(o, "lexicons:     {}", p.lexicons.join(", "));
    let _ = writeln!(
        o,
        "skipped:      {} utterances; {} training words missing from every lexicon{}",
        p.skipped.len(),
        p.missing_words.len(),
        if p.missing_words.is_empty() {
            String::new()
        } else {
            format!(": {}", p.missing_words.join(" "))
        }
    );
    let _ = writeln!(o, "seed:         {}", p.seed);
    let _ = writeln!(
        o,
        "trained in:   {:.0} s by sparsa {}",
        p.train_seconds, p.sparsa_version
    );
    let _ = writeln!(o, "recipe:       {}", p.recipe);
    let _ = writeln!(o, "command:      {}", p.command);
    let _ = writeln!(
        o,
        "dev frame accuracy per alignment round: {}",
        p.dev_frame_acc_per_round
            .iter()
            .map(|a| format!("{:.2}%", 100.0 * a))
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    let _ = writeln!(o, "\n| round | epoch | lr | train CE | dev CE | dev acc | s | frames/s |\n|---|---|---|---|---|---|---|---|");
    for e in &p.epochs {
        let _ = writeln!(
            o,
            "| {} | {} | {:.4} | {:.3} | {:.3} | {:.2}% | {:.0} | {:.0} |",
            e.round,
            e.epoch,
            e.learning_rate,
            e.train_ce,
            e.dev_ce,
            100.0 * e.dev_frame_acc,
            e.seconds,
            e.frames_per_s
        );
    }
    match &m.quantized {
        None => {
            let _ = writeln!(o, "\nint8:         none (add with `sparsa-train quantize`)");
        }
        Some(q) => {
            let c = &q.calibration;
            let _ = writeln!(
                o,
                "\nint8:         {}\ncalibration:  {} frames of {} utterances of {}, magnitude percentile {}",
                sparsa::am::model::QUANT_SCHEME,
                c.frames,
                c.utterances,
                c.data,
                c.percentile
            );
            let _ = writeln!(o, "\n| layer input | scale | range | max seen | clipped | zeros f32 | zeros int8 | weight scales (min..max) |\n|---|---|---|---|---|---|---|---|");
            for (l, (ql, st)) in q.layers.iter().zip(&q.stats).enumerate() {
                let (lo, hi) = ql
                    .w_scale
                    .iter()
                    .fold((f32::INFINITY, 0.0f32), |(a, b), &s| (a.min(s), b.max(s)));
                let _ = writeln!(
                    o,
                    "| {l} | {:.5} | ±{:.3} | {:.3} | {:.4}% | {:.1}% | {:.1}% | {lo:.5}..{hi:.5} |",
                    ql.input_scale,
                    ql.input_scale * 127.0,
                    st.max_abs,
                    100.0 * st.clipped,
                    100.0 * st.zero_f32,
                    100.0 * st.zero_int8
                );
            }
        }
    }
    std::io::stdout().write_all(o.as_bytes())?;
    Ok(())
}

fn features(args: FeaturesArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| sparsa::Error::io(path, e))?;
            ron::from_str::<FrontendConfig>(&text)
                .map_err(|e| sparsa::Error::config(&path.display().to_string(), e.to_string()))?
        }
        None => FrontendConfig {
            sample_rate_hz: args.rate,
            num_mel_bins: args.mel_bins,
            cmn: None,
            ..FrontendConfig::default()
        },
    };
    if args.cmn && config.cmn.is_none() {
        config.cmn = Some(CmnConfig::default());
    }
    let params = config.validate()?;
    let raw = args.raw_rate.map(|rate_hz| RawFormat {
        rate_hz,
        channels: args.raw_channels,
    });
    let mut stream = MonoStream::open(&args.input, raw, params.config().sample_rate_hz)?;
    let mut frontend = Frontend::new(params.clone());
    let mut frame = vec![0.0f32; params.dim()];
    let mut block = Vec::new();

    let mut run = |writer: &mut FeatureWriter<Box<dyn WriteSeek>>| -> anyhow::Result<()> {
        let mut samples = 0u64;
        loop {
            let more = stream.read_block(&mut block);
            // Frames from audio that arrived before a fault are written first.
            if let Ok(true) = more {
                samples += block.len() as u64;
                frontend.accept_samples(&block);
                while frontend.pop_frame(&mut frame) {
                    writer.write_frame(&frame)?;
                }
                continue;
            }
            writer.flush()?;
            more?;
            break;
        }
        if writer.frames() == 0 {
            return Err(sparsa::Error::bad_audio(
                stream.reader().name(),
                None,
                format!(
                    "audio too short: {samples} samples at {} Hz make no {} ms frame",
                    params.config().sample_rate_hz,
                    params.config().frame_length_ms
                ),
            )
            .into());
        }
        Ok(())
    };

    let out: Box<dyn WriteSeek> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => {
            anyhow::ensure!(
                args.format == FeatureFormat::Text,
                "--format npy needs --output FILE (npy cannot be streamed to stdout)"
            );
            Box::new(StdoutNoSeek(std::io::BufWriter::new(
                std::io::stdout().lock(),
            )))
        }
    };
    let mut writer = FeatureWriter::new(out, args.format, params.dim())?;
    let result = run(&mut writer);
    writer.finish()?;
    result
}

/// A writer that may or may not seek (stdout does not; only npy needs it).
trait WriteSeek: Write + std::io::Seek {}
impl<T: Write + std::io::Seek> WriteSeek for T {}

struct StdoutNoSeek<W: Write>(W);

impl<W: Write> Write for StdoutNoSeek<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> std::io::Seek for StdoutNoSeek<W> {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "stdout cannot seek",
        ))
    }
}
