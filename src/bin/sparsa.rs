//! `sparsa`: the recognizer command line. Parses arguments, installs logging,
//! calls the library and maps errors to exit codes (0 ok, 1 runtime fault,
//! 2 bad input).

mod common;

// Debug builds (the ones the tests run) abort if the audio callback
// allocates; the library only marks the callback, the binary checks it.
#[cfg(debug_assertions)]
#[global_allocator]
static ALLOC_GUARD: sparsa::live::alloc_guard::Guarded = sparsa::live::alloc_guard::Guarded;

use clap::{Args, Parser, Subcommand};
use sparsa::live::config::ListenFlags;
use sparsa::recognizer::{EventFormat, ModelArgs};
use sparsa::tools::analyze::AnalyzeArgs;
use sparsa::tools::batch::{transcribe_dir, BatchArgs, EvalArgs, MergeArgs, SplitArgs};
use sparsa::tools::bench::BenchArgs;
use sparsa::tools::feature_dump::FeaturesArgs;
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
    /// Transcribe a WAV/FLAC/raw file or stdin as it is read, or every
    /// utterance of a Kaldi data dir.
    ///
    /// Audio streams through front end, DNN scorer and decoder while it
    /// arrives: partial results appear before the input ends, and an
    /// endpoint (silence after speech, or 20 s) closes each utterance.
    /// Prints JSON Lines events ({"type":"partial"|"final",...}) or, with
    /// --format text, one line per final result.
    ///
    /// Given a data dir (wav.scp; text and utt2spk optional), transcribes
    /// its files in parallel (--threads) and writes one JSON line per file
    /// ({"type":"utt","utt":ID,"text":...,"words":[...]}, after a
    /// {"type":"shard",...} header) or, with --format text, Kaldi `text`
    /// lines. With --shard K/N only part K of N (see `sparsa split`);
    /// `sparsa merge` combines the parts' --output files.
    ///
    /// Examples:
    ///   sparsa transcribe tests/data/so762_000490017.flac
    ///   sox talk.wav -t wav - | sparsa transcribe - --format text
    ///   arecord -f S16_LE -r 16000 | sparsa transcribe -
    ///   sparsa transcribe archive/ --shard 3/8 --output results/3.jsonl
    #[command(verbatim_doc_comment)]
    Transcribe(TranscribeArgs),
    /// Decode a Kaldi data dir and score it: WER (sub/del/ins), SER, RTF.
    ///
    /// Each utterance is decoded as one utterance (no endpointing), on all
    /// cores by default. Writes the hypotheses in Kaldi `text` format with
    /// --hyp. With --shard K/N decodes only part K of N (see `sparsa
    /// split`); --results writes the per-utterance results that `sparsa
    /// merge` combines into the unsharded report.
    ///
    /// An utterance whose audio cannot be decoded (unreadable, corrupt, too
    /// short) does not stop the run: it is reported by id, scored with the
    /// words recognized before the fault (all deletions if none), and the
    /// report, --hyp and --results are still written; the exit code is then
    /// 2. Output paths are checked before decoding.
    ///
    /// Examples:
    ///   sparsa eval ../shared/corpora/speechocean762/test --hyp hyp.txt
    ///   sparsa eval DATA --shard 0/4 --results shards/0.jsonl   # ... 3/4
    ///   sparsa merge shards/*.jsonl --hyp hyp.txt
    #[command(verbatim_doc_comment)]
    Eval(EvalArgs),
    /// Split a Kaldi data dir into N data dirs OUT/0 ... OUT/N-1.
    ///
    /// By speaker (a speaker's utterances stay in one part, as Kaldi's
    /// split_data.sh) or, with --per-utt, by utterance; parts are balanced
    /// by audio file size. These are exactly the parts `--shard K/N`
    /// selects. wav.scp gets absolute paths, so the parts can be read
    /// from anywhere on shared storage.
    ///
    /// Example:
    ///   sparsa split ../shared/corpora/speechocean762/test 4 --out test-split4
    #[command(verbatim_doc_comment)]
    Split(SplitArgs),
    /// Merge the results files of the shards of one `eval` or `transcribe`
    /// job into the unsharded result.
    ///
    /// Checks that the files are shards 0/N ... N-1/N of one job, each
    /// once (a missing or damaged shard is named: rerun only it). For
    /// `eval` prints the same WER report as the unsharded run (CPU time
    /// summed, wall time of the longest shard) and writes --hyp; for
    /// `transcribe` writes the utterances in data-dir order.
    ///
    /// Examples:
    ///   sparsa merge shards/*.jsonl --hyp hyp.txt
    ///   sparsa merge results/*.jsonl --output archive.jsonl
    #[command(verbatim_doc_comment)]
    Merge(MergeArgs),
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
    /// Serve many live streams over the network: the Vosk WebSocket
    /// protocol (existing Vosk clients work unchanged) and Home Assistant's
    /// Wyoming protocol.
    ///
    /// One model is loaded once; every stream gets its own front end,
    /// scorer and decoder, run by a pool of --workers threads. A new stream
    /// is refused (WebSocket close 1013) when the measured load says the
    /// open ones would fall behind real time. GET /health on the WebSocket
    /// port reports streams, capacity, load and counters; a stats line goes
    /// to the log every --stats-interval. Loopback only unless told
    /// otherwise (beyond it, --token-file is required). SIGTERM finalizes
    /// open streams and exits 0. Under systemd socket activation the passed
    /// sockets are used (FileDescriptorName=wyoming for Wyoming).
    ///
    /// Examples:
    ///   sparsa serve
    ///   sparsa serve --listen 127.0.0.1:2700 --wyoming 127.0.0.1:10300
    ///   sparsa serve --listen 0.0.0.0:2700 --token-file /etc/sparsa/token
    ///   python3 test.py clip.wav   # a Vosk client, ws://localhost:2700
    #[command(verbatim_doc_comment)]
    Serve(sparsa::serve::ServeFlags),
}

#[derive(Args)]
struct ListenArgs {
    /// List input devices (id, default format, description) and exit.
    #[arg(long)]
    list_devices: bool,
    #[command(flatten)]
    flags: ListenFlags,
    /// Output on stdout: JSON Lines events, or plain text (finals only).
    #[arg(long, value_enum, default_value_t = EventFormat::Jsonl)]
    format: EventFormat,
}

#[derive(Args)]
struct TranscribeArgs {
    /// Audio file (WAV, FLAC, or raw s16le with --raw-rate), `-` for stdin,
    /// or a Kaldi data dir.
    input: PathBuf,
    #[command(flatten)]
    decode: ModelArgs,
    /// Treat the input as headerless little-endian 16-bit PCM at this rate (Hz).
    #[arg(long, value_name = "HZ")]
    raw_rate: Option<u32>,
    /// Output: JSON Lines events, or plain text (one line per final result).
    #[arg(long, value_enum, default_value_t = EventFormat::Jsonl)]
    format: EventFormat,
    /// Run every stage on this thread (the reference the threaded pipeline
    /// is tested against) instead of one thread per stage.
    #[arg(long)]
    single_threaded: bool,
    #[command(flatten)]
    batch: BatchArgs,
    /// Data dir only: write the results to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn main() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // The recognizer is one stream per thread; the f32 path's GEMM must
        // not fan out behind its back (and benchmarks measure one core).
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let command = Cli::parse().command;
    // The server's log (listening addresses, streams, stats) is its output.
    common::init_logging_at(match command {
        Command::Serve(_) => "warn,sparsa=info",
        _ => "warn",
    });
    if command.writes_stdout() {
        if let Err(e) = common::require_stdout() {
            std::process::exit(common::report("sparsa", &e.into()));
        }
    }
    let result = match command {
        Command::Features(args) => features(args),
        Command::Transcribe(args) => transcribe(args),
        Command::Eval(args) => eval(args),
        Command::Split(args) => split(args),
        Command::Merge(args) => merge(args),
        Command::ModelInfo { model } => model_info(&model),
        Command::Analyze(args) => analyze(args),
        Command::Bench(args) => bench(args),
        Command::Listen(args) => listen(args),
        Command::Serve(flags) => sparsa::serve::run(&flags).map_err(Into::into),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => std::process::exit(common::report("sparsa", &err)),
    }
}

impl Command {
    /// Whether the command's output goes to stdout (`listen` checks its
    /// resolved config itself).
    fn writes_stdout(&self) -> bool {
        match self {
            Command::Transcribe(a) => a.output.is_none(),
            Command::Features(a) => a.output.is_none(),
            Command::Listen(a) => a.list_devices,
            Command::Serve(_) => false,
            _ => true,
        }
    }
}

/// A command's exit code, or the error `main` reports.
type Exit = anyhow::Result<i32>;

fn listen(args: ListenArgs) -> Exit {
    if args.list_devices {
        let table = sparsa::live::capture::device_table()?;
        std::io::stdout().write_all(table.as_bytes())?;
        return Ok(0);
    }
    let cfg = args.flags.resolve()?;
    if cfg.stdout {
        common::require_stdout()?;
    }
    Ok(sparsa::live::daemon::run(&cfg, args.format)?.code())
}

fn bench(args: BenchArgs) -> Exit {
    common::note("measuring the scorer (about 10 s per model and path set)...");
    std::io::stdout().write_all(args.run()?.as_bytes())?;
    Ok(0)
}

fn transcribe(args: TranscribeArgs) -> Exit {
    let dir = args.input.is_dir();
    let given = |flag: &str, yes: bool| -> anyhow::Result<()> {
        match yes {
            true => Err(sparsa::Error::config(
                flag,
                format!("{flag} does not apply to {}", args.input.display()),
            )
            .into()),
            false => Ok(()),
        }
    };
    if dir {
        given("--raw-rate", args.raw_rate.is_some())?;
        let output = args.output.as_deref();
        let out = &mut std::io::stdout();
        transcribe_dir(
            &args.input,
            &args.decode,
            &args.batch,
            args.format,
            output,
            out,
        )?;
        return Ok(0);
    }
    given("--shard", args.batch.shard.shard.count > 1)?;
    given("--output", args.output.is_some())?;
    let model = args.decode.load()?;
    let (input, format) = (&args.input, args.format);
    let run = sparsa::live::transcribe::run;
    Ok(run(
        &model,
        input,
        args.raw_rate,
        format,
        args.single_threaded,
    )?)
}

fn eval(args: EvalArgs) -> Exit {
    args.run(&mut std::io::stdout())?;
    Ok(0)
}

fn split(args: SplitArgs) -> Exit {
    args.run(&mut std::io::stdout())?;
    Ok(0)
}

fn merge(args: MergeArgs) -> Exit {
    args.run(&mut std::io::stdout())?;
    Ok(0)
}

fn analyze(args: AnalyzeArgs) -> Exit {
    std::io::stdout().write_all(args.run()?.as_bytes())?;
    common::note(&format!(
        "wrote layers.csv, units.csv, population_sparsity.csv, activation_probability.png, population_sparsity.png to {}",
        args.out.display()
    ));
    Ok(0)
}

fn model_info(path: &std::path::Path) -> Exit {
    std::io::stdout().write_all(sparsa::tools::model_info::describe(path)?.as_bytes())?;
    Ok(0)
}

fn features(args: FeaturesArgs) -> Exit {
    args.run()?;
    Ok(0)
}
