//! The layer rule, checked on the source: a module of `src/` refers to
//! `crate::X` only for layers X at or below its own, and the runtime never
//! reaches `live`, `tools` or `train` (the README's `## Architecture`).

use std::path::Path;

/// Bottom up; a layer may use itself and anything before it, except that
/// `live` and `tools` are siblings that never use each other.
const LAYERS: [&str; 17] = [
    "error",
    "atomic",
    "bounded",
    "compress",
    "range",
    "rng",
    "stage",
    "audio",
    "features",
    "search",
    "am",
    "recognizer",
    "corpus",
    "tools",
    "live",
    "serve",
    "train",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

fn allowed(me: &str, dep: &str) -> bool {
    match (rank(me), rank(dep)) {
        (Some(m), Some(d)) => {
            d <= m
                && !matches!(
                    (me, dep),
                    ("live", "tools") | ("live", "train") | ("serve", "tools") | ("serve", "train")
                )
        }
        _ => true,
    }
}

/// Every `crate::LAYER` reference (imports, paths, doc links) under `dir`,
/// as (file, line, own layer, referenced layer).
fn references(dir: &Path, out: &mut Vec<(String, usize, String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            references(&path, out);
            continue;
        }
        let rel = path.strip_prefix(common_src()).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let me = first.trim_end_matches(".rs").to_string();
        if me == "bin" || me == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("crate::") {
                let dep: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                out.push((rel.display().to_string(), i + 1, me.clone(), dep));
            }
        }
    }
}

fn common_src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_refers_to_a_higher_layer() {
    let mut refs = Vec::new();
    references(&common_src(), &mut refs);
    assert!(refs.len() > 100, "read too little: {}", refs.len());
    let bad: Vec<String> = refs
        .iter()
        .filter(|(_, _, me, dep)| !allowed(me, dep))
        .map(|(f, l, me, dep)| format!("src/{f}:{l}: {me} -> {dep}"))
        .collect();
    assert!(bad.is_empty(), "upward references:\n{}", bad.join("\n"));
}

#[test]
fn the_rule_itself_catches_upward_references() {
    assert!(!allowed("am", "recognizer"));
    assert!(!allowed("recognizer", "live"));
    assert!(!allowed("search", "am"));
    assert!(!allowed("live", "tools"));
    assert!(allowed("train", "tools"));
    assert!(allowed("am", "search"));
}
