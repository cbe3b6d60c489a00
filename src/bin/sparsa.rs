//! `sparsa`: the recognizer command line. Parses arguments, installs logging,
//! calls the library and maps errors to exit codes (0 ok, 1 runtime fault,
//! 2 bad input).

mod common;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sparsa::audio::{MonoStream, RawFormat};
use sparsa::features::{FeatureFormat, FeatureWriter};
use sparsa::frontend::{CmnConfig, Frontend, FrontendConfig};
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
    /// Print what a model is and where it came from: shape, front end,
    /// training data, recipe, and the per-epoch metrics of its training.
    ModelInfo {
        /// Model folder (containing am.ron) or model file.
        #[arg(default_value = "models/default")]
        model: PathBuf,
    },
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

fn main() {
    common::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Features(args) => features(args),
        Command::ModelInfo { model } => model_info(&model),
    };
    if let Err(err) = result {
        std::process::exit(common::report("sparsa", &err));
    }
}

fn model_info(path: &std::path::Path) -> anyhow::Result<()> {
    let m = sparsa::model::AcousticModel::load(path)?;
    let n = &m.network;
    let p = &m.provenance;
    let fe = m.frontend.config();
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(o, "model:        {}", path.display());
    let _ = writeln!(
        o,
        "format:       {} v{}",
        sparsa::model::FORMAT,
        sparsa::model::VERSION
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
    let _ = writeln!(
        o,
        "phones:       {} ({} pdfs, {} states each)",
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
