//! The LM tools end to end through `sparsa-train`: estimating from xz text
//! with a vocabulary chosen by frequency, pruning to a size, mixing with
//! EM weights on dev transcripts, perplexity, and their errors on bad
//! input (real text: Gutenberg prose and speechocean762 transcripts).

use sparsa::search::lm::NgramLm;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CORPUS: &str = "../shared/corpora/speechocean762";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn corpus(split: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(CORPUS)
        .join(split)
}

fn train_cmd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsa-train"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ppl`'s value from a line of `sparsa-train ppl`.
fn ppl_of(line: &str) -> f64 {
    line.rsplit("ppl ").next().unwrap().trim().parse().unwrap()
}

#[test]
fn estimate_prune_mix_and_score_real_text() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    // General text (xz) over its 500 most frequent words plus a listed one.
    std::fs::write(p("extra.txt"), "ZEBRA\n").unwrap();
    let text = data("gutenberg-2k.txt.xz");
    let general = p("general.arpa.gz");
    let err = ok(&train_cmd(&[
        "lm",
        "--text",
        s(&text),
        "--vocab",
        s(&p("extra.txt")),
        "--vocab-size",
        "500",
        "--write-vocab",
        s(&p("vocab.txt")),
        "--quiet",
        "--out",
        s(&general),
    ]));
    assert!(err.contains("2000 sentences"), "{err}");
    let vocab = std::fs::read_to_string(p("vocab.txt")).unwrap();
    let words: Vec<&str> = vocab.lines().collect();
    assert_eq!(words.len(), 502, "500 + ZEBRA + <unk>");
    assert!(words.contains(&"THE") && words.contains(&"ZEBRA") && words.contains(&"<unk>"));
    let full = NgramLm::load(&general).unwrap();
    assert_eq!(full.words().len(), 504);
    let total: usize = full.counts().iter().sum();

    // Pruned to a third of its n-grams: fewer, still loadable, worse fit.
    let pruned = p("pruned.arpa");
    let target = total / 3;
    ok(&train_cmd(&[
        "prune",
        "--lm",
        s(&general),
        "--max-ngrams",
        &target.to_string(),
        "--out",
        s(&pruned),
    ]));
    let small = NgramLm::load(&pruned).unwrap();
    let kept: usize = small.counts().iter().sum();
    assert!(kept <= target && kept > target - 100, "{kept} of {target}");
    let dev = corpus("dev");
    let ppl = |lm: &Path| {
        let o = train_cmd(&["ppl", s(lm), s(&dev)]);
        ok(&o);
        ppl_of(String::from_utf8_lossy(&o.stdout).lines().next().unwrap())
    };
    let (p_full, p_small) = (ppl(&general), ppl(&pruned));
    assert!(p_small > p_full, "pruned {p_small} vs full {p_full}");

    // The train-transcript LM, then the mixture with EM weights on dev.
    let train = p("train.arpa");
    ok(&train_cmd(&[
        "lm",
        "--train",
        s(&corpus("train")),
        "--quiet",
        "--out",
        s(&train),
    ]));
    let mixed = p("mixed.arpa");
    let err = ok(&train_cmd(&[
        "mix",
        "--lm",
        s(&general),
        "--lm",
        s(&train),
        "--heldout",
        s(&dev),
        "--out",
        s(&mixed),
    ]));
    assert!(err.contains("EM weights"), "{err}");
    let m = NgramLm::load(&mixed).unwrap();
    assert!(m.words().len() > 1759, "the union of both vocabularies");
    // The mixture predicts dev better than the general LM alone.
    assert!(ppl(&mixed) < p_full);
    // Weight 1 on the train LM gives its perplexity back on its own words
    // (the general LM's other words get probability 0 then).
    let same = p("same.arpa");
    ok(&train_cmd(&[
        "mix",
        "--lm",
        s(&train),
        "--lm",
        s(&general),
        "--weights",
        "1,0",
        "--out",
        s(&same),
    ]));
    let on_train = |lm: &Path| {
        let o = train_cmd(&["ppl", s(lm), s(&corpus("train"))]);
        ok(&o);
        ppl_of(String::from_utf8_lossy(&o.stdout).lines().next().unwrap())
    };
    let (a, b) = (on_train(&train), on_train(&same));
    assert!((a - b).abs() < 1e-3 * a, "{a} vs {b}");
}

#[test]
fn bad_input_to_the_lm_tools_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let lm = p("lm.arpa");
    std::fs::write(p("t.txt"), "A B C\nB C A\n").unwrap();
    ok(&train_cmd(&[
        "lm",
        "--text",
        s(&p("t.txt")),
        "--order",
        "2",
        "--out",
        s(&lm),
    ]));
    let fails = |args: &[&str], what: &str| {
        let o = train_cmd(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    // Weights that do not fit the models.
    fails(
        &[
            "mix",
            "--lm",
            s(&lm),
            "--lm",
            s(&lm),
            "--weights",
            "0.5,0.7",
            "--out",
            s(&p("m")),
        ],
        "summing to 1",
    );
    fails(
        &["mix", "--lm", s(&lm), "--weights", "1", "--out", s(&p("m"))],
        "two or more",
    );
    // Pruning without saying how much.
    fails(
        &["prune", "--lm", s(&lm), "--out", s(&p("m"))],
        "--max-ngrams",
    );
    fails(
        &[
            "prune",
            "--lm",
            s(&lm),
            "--max-ngrams",
            "2",
            "--out",
            s(&p("m")),
        ],
        "unigrams",
    );
    // A corrupt LM: named with its line.
    std::fs::write(
        p("bad.arpa"),
        "\\data\\\nngram 1=1\n\n\\1-grams:\nxyz A\n\\end\\\n",
    )
    .unwrap();
    fails(&["ppl", s(&p("bad.arpa")), s(&p("t.txt"))], "bad.arpa");
    // Truncated gzip text: an error naming the file, not a short LM.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, "THE CAT SAT\n".repeat(500).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(p("cut.txt.gz"), &gz[..gz.len() / 2]).unwrap();
    fails(
        &[
            "lm",
            "--text",
            s(&p("cut.txt.gz")),
            "--quiet",
            "--out",
            s(&p("m")),
        ],
        "cut.txt.gz",
    );
    // Binary garbage only.
    std::fs::write(p("junk"), b"\x00\x01\x02\n\xff\xfe\n").unwrap();
    fails(&["ppl", s(&lm), s(&p("junk"))], "junk");
}
