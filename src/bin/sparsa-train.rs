//! `sparsa-train`: the offline trainer. Reads Kaldi data dirs and lexicons
//! and writes the model folders `sparsa` loads.

mod common;

use clap::{Parser, Subcommand};
use sparsa::train::commands;
use sparsa::train::experiment;
use sparsa::train::flags::{
    command_line, AmFlags, EnsembleArgs, ExperimentArgs, G2pArgs, LmArgs, MixArgs, PplArgs,
    PrepareArgs, PruneArgs, QuantizeArgs,
};
use sparsa::train::lm;

/// sparsa-train: train rectifier DNN-HMM acoustic models for sparsa.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a DNN-HMM acoustic model from Kaldi data dirs (flat start, no GMM).
    ///
    /// Computes features with the recognizer's front end, aligns from a flat
    /// start, trains the DNN with SGD and realigns for several rounds, then
    /// writes OUT/am.ron (RON model with its int8 export) and OUT/lexicon.txt
    /// (training vocabulary).
    ///
    /// Examples (a monophone model from a flat start; then context-dependent
    /// states on its alignment, as the shipped default was made; the exact
    /// commands of every shipped model are in docs/training.md):
    ///   sparsa-train am --train ../shared/corpora/speechocean762/train \
    ///     --dev ../shared/corpora/speechocean762/dev \
    ///     --lexicon ../shared/lexicon/cmudict.dict \
    ///     --lexicon ../shared/corpora/speechocean762/lexicon.txt \
    ///     --activation relu --speed-perturb 0.9,1.1 --out mono
    ///   sparsa-train am ... --align-model mono --units 256 --cmn-prior-frames 20 \
    ///     --freq-mask 8 --context-min-frames 300 --out models/default
    ///
    /// With --prepared DIR, the features (and the --align-model alignment)
    /// are read from the shards `sparsa-train prepare` wrote into DIR
    /// instead of computed; give the same data flags as to prepare (see
    /// `sparsa-train prepare --help`). The model is the one the same
    /// command without --prepared trains.
    #[command(verbatim_doc_comment)]
    Am(AmFlags),
    /// Compute one shard of `am`'s data: features (and, with --align-model,
    /// the alignment), to run as N independent jobs before one `am`.
    ///
    /// Train and dev (after lexicon filtering and --max-utts, as `am` reads
    /// them) are each cut into N parts by speaker (--per-utt: by
    /// utterance), as `sparsa split` cuts a data dir. Part K of both, with
    /// its speed-perturbed and VTLP copies and silence padding, goes to
    /// OUT/K: raw features as a Kaldi binary archive (train/feats.ark,
    /// dev/feats.ark), text, skipped, with --align-model each frame's pdf
    /// and context key (ali.pdf, ali.key), and prepare.ron, the settings
    /// `am --prepared` checks. OUT/K appears only when complete: a failed
    /// shard is rerun alone.
    ///
    /// The sharded flow (e.g. as a Slurm array, K = $SLURM_ARRAY_TASK_ID):
    ///   mkdir -p mono && git show f372f4a:models/relu/am.ron > mono/am.ron  # monophone aligner
    ///   DATA="--train ../shared/corpora/speechocean762/train \
    ///     --dev ../shared/corpora/speechocean762/dev \
    ///     --lexicon ../shared/lexicon/cmudict.dict \
    ///     --lexicon ../shared/corpora/speechocean762/lexicon.txt --align-model mono"
    ///   for K in 0 1 2 3; do sparsa-train prepare $DATA --shard $K/4 --out prep; done
    ///   sparsa-train am $DATA --prepared prep --units 256 --max-epochs 10 --cmn-prior-frames 20 \
    ///     --freq-mask 8 --context-min-frames 300 --out models/new
    #[command(verbatim_doc_comment)]
    Prepare(PrepareArgs),
    /// Estimate an n-gram LM (interpolated modified Kneser-Ney) from the
    /// `text` files of Kaldi data dirs and from plain text, and write it as
    /// ARPA.
    ///
    /// Use train transcripts and general text only: the LM must not see dev
    /// or test text. Text files may be plain, gzip or xz. With --vocab,
    /// every other word becomes <unk>; --vocab-size N adds the N most
    /// frequent words (with --lexicon, of those it pronounces). With
    /// --cutoff N, n-grams of order 2 and up seen fewer than N times are
    /// dropped; --prune / --max-ngrams prune by relative entropy; the
    /// back-off weights are recomputed either way. Counting is in memory:
    /// every n-gram packed into one integer and sorted (about 1 GB and 20 s
    /// for 25 M words at order 3).
    ///   sparsa-train lm --train ../shared/corpora/speechocean762/train --out models/default/lm.arpa
    ///   sparsa-train lm --text ../shared/text/gutenberg-25M.txt.xz --vocab-size 64000 \
    ///     --max-ngrams 2000000 --write-vocab vocab.txt --out general.arpa.gz
    /// (scripts/general-model.sh builds models/general this way.)
    #[command(verbatim_doc_comment)]
    Lm(LmArgs),
    /// Prune an ARPA LM by relative entropy (Stolcke 1998) to a threshold
    /// or a number of n-grams; back-off weights are recomputed.
    ///
    ///   sparsa-train prune --lm big.arpa --max-ngrams 2000000 --out small.arpa.gz
    #[command(verbatim_doc_comment)]
    Prune(PruneArgs),
    /// Mix ARPA LMs by linear interpolation into one, with weights given
    /// or chosen by EM on held-out text (SRILM's compute-best-mix); prints
    /// each model's and the mixture's perplexity on it.
    ///
    ///   sparsa-train mix --lm general.arpa.gz --lm models/default/lm.arpa \
    ///     --heldout ../shared/corpora/speechocean762/dev --out mixed.arpa.gz
    #[command(verbatim_doc_comment)]
    Mix(MixArgs),
    /// Perplexity and OOV rate of an ARPA LM on text (Kaldi data dirs or
    /// text files), counted as SRILM's ngram -ppl counts them.
    ///
    ///   sparsa-train ppl models/default/lm.arpa ../shared/corpora/speechocean762/dev
    #[command(verbatim_doc_comment)]
    Ppl(PplArgs),
    /// Train a grapheme-to-phoneme model (graphone n-grams) on CMUdict-format
    /// lexicons, or apply one to a word list.
    ///
    /// Training aligns letters and phones by EM (1-2 letters with 0-2 phones
    /// per graphone), estimates a Kneser-Ney n-gram model over the graphone
    /// sequences and writes it as ARPA. --heldout-percent P leaves P% of the
    /// words out (by a hash of the word) and reports word and phone error
    /// rate on them, in the log and in NAME.results.json beside the model.
    /// Name the model g2p.arpa in a model folder: words without a
    /// pronunciation (--words lines with no phones, phrase lists) then get
    /// generated ones. docs/g2p.md has the measured numbers.
    ///   sparsa-train g2p --lexicon ../shared/lexicon/cmudict.dict \
    ///     --heldout-percent 5 --out g2p.arpa
    ///   sparsa-train g2p --model g2p.arpa --words words.txt > lexicon.txt
    #[command(verbatim_doc_comment)]
    G2p(G2pArgs),
    /// Add (or redo) the int8 export of a model: int8 weights with one scale
    /// per output row, activation scales calibrated on training frames.
    ///
    /// `am` already does this at the end of training; use this for older
    /// models or to try another calibration. Rewrites MODEL/am.ron in place
    /// unless --out is given.
    ///   sparsa-train quantize --model models/default --train ../shared/corpora/speechocean762/train
    #[command(verbatim_doc_comment)]
    Quantize(QuantizeArgs),
    /// Fold seeds of one recipe into one model that scores their
    /// log-linear ensemble (mean logits; hidden layers block-diagonal).
    ///
    /// The members must share front end, phones, topology, activation,
    /// context and depth (the same `am` command with other --seed values).
    /// The result costs what its wider network costs: `sparsa bench`.
    ///   sparsa-train ensemble --model s1 --model s2 \
    ///     --train ../shared/corpora/speechocean762/train --out ens
    #[command(verbatim_doc_comment)]
    Ensemble(EnsembleArgs),
    /// Reproduce Maas et al. (2013) on your data: train and decode the grid
    /// {tanh, relu, leaky} x {1..4 hidden layers} with one width and recipe.
    ///
    /// Train and dev are aligned once by --align-model (default: the shipped
    /// ReLU model); every cell trains a fresh network on that alignment (one
    /// newbob run), is decoded on dev and test with the train-text trigram LM
    /// and the tuned decoder settings (f32 scorer), and is measured for
    /// hidden-unit sparsity on dev. Finished cells are checkpointed in
    /// OUT/cells/NAME/result.ron: a rerun skips them, an interrupted run
    /// resumes. Writes OUT/results.csv, OUT/results.md, OUT/wer_by_depth.png
    /// and OUT/activation_probability.png.
    ///
    /// The grid of docs/paper.md (48 min on 2 cores here):
    ///   sparsa-train experiment --train ../shared/corpora/speechocean762/train \
    ///     --dev ../shared/corpora/speechocean762/dev \
    ///     --test ../shared/corpora/speechocean762/test \
    ///     --lexicon ../shared/lexicon/cmudict.dict \
    ///     --lexicon ../shared/corpora/speechocean762/lexicon.txt --out grid
    #[command(verbatim_doc_comment)]
    Experiment(ExperimentArgs),
}

fn main() {
    // The trainer's progress (epochs, rounds, calibration) is logged at info.
    common::init_logging_at("warn,sparsa=info");
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Am(a) => {
            let cfg = a.config();
            commands::am(
                &cfg,
                a.data.align_model.as_deref(),
                a.calibration.into(),
                &a.out,
            )
            .map(|_| ())
        }
        Command::Prepare(a) => commands::prepare(
            &a.data.config(),
            a.data.align_model.as_deref(),
            a.shard.shard,
            a.shard.split(),
            &a.out,
        )
        .map(|_| ()),
        Command::Lm(a) => lm::lm(&a).map(|_| ()),
        Command::Prune(a) => lm::prune(&a).map(|_| ()),
        Command::Mix(a) => lm::mix(&a).map(|_| ()),
        Command::Ppl(a) => lm::ppl(&a).map(|_| ()),
        Command::G2p(a) => commands::g2p(&a),
        Command::Quantize(a) => {
            commands::quantize(&a.model, &a.train, a.out.as_deref(), a.calibration.into())
                .map(|_| ())
        }
        Command::Ensemble(a) => commands::ensemble(
            &a.model,
            &a.train,
            &a.out,
            a.calibration.into(),
            &command_line(),
        )
        .map(|_| ()),
        Command::Experiment(a) => experiment(a),
    };
    if let Err(err) = result {
        std::process::exit(common::report("sparsa-train", &anyhow::Error::from(err)));
    }
}

fn experiment(a: ExperimentArgs) -> sparsa::Result<()> {
    let cfg = a.config(command_line());
    experiment::run(&cfg)?;
    let table = sparsa::bounded::read_text(&cfg.out.join("results.md"), sparsa::bounded::RESULTS)
        .unwrap_or_default();
    use std::io::Write;
    std::io::stdout()
        .write_all(table.as_bytes())
        .map_err(|source| sparsa::Error::Output { source })
}
