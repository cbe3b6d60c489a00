//! `sparsa-train`: the offline trainer. Reads Kaldi data dirs and lexicons
//! and writes the RON model files `sparsa` loads.

use clap::Parser;

/// sparsa-train: train rectifier DNN-HMM acoustic models and n-gram LMs for sparsa.
///
/// Training is being built (issue #3: flat-start alignment, ReLU / leaky
/// ReLU / tanh DNNs, RON model files). This release only has the front end
/// the trainer will share with the recognizer: try `sparsa features`.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    Cli::parse();
    eprintln!("sparsa-train: no training commands yet (see `sparsa-train --help`)");
    std::process::exit(2);
}
