//! Grows the phonetic decision tree that ties context-dependent states
//! ([`crate::search::tree`]) from per-context statistics of aligned frames,
//! Young–Odell–Woodland style: one diagonal Gaussian per node, greedy
//! best-gain splits under a minimum count per leaf, up to a target number
//! of leaves.

use crate::search::hmm::{unpack_key, PdfId, Topology, BOUNDARY};
use crate::search::lexicon::{PhoneId, PhoneSet};
use crate::search::tree::{class_bit, ContextTree, PhoneClass, Question, TreeNode, BOUNDARY_CLASS};
use std::collections::HashMap;

/// Frame statistics of one context-dependent state (or a pool of them):
/// count, per-dimension sum and sum of squares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub n: f64,
    pub sum: Vec<f64>,
    pub sumsq: Vec<f64>,
}

impl Stats {
    /// Empty statistics of `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        Stats {
            n: 0.0,
            sum: vec![0.0; dim],
            sumsq: vec![0.0; dim],
        }
    }

    /// Adds one frame.
    pub fn add_frame(&mut self, x: &[f32]) {
        self.n += 1.0;
        for ((s, q), &v) in self.sum.iter_mut().zip(&mut self.sumsq).zip(x) {
            let v = v as f64;
            *s += v;
            *q += v * v;
        }
    }

    fn add(&mut self, o: &Stats) {
        self.n += o.n;
        for (a, b) in self.sum.iter_mut().zip(&o.sum) {
            *a += b;
        }
        for (a, b) in self.sumsq.iter_mut().zip(&o.sumsq) {
            *a += b;
        }
    }

    fn minus(&self, o: &Stats) -> Stats {
        Stats {
            n: self.n - o.n,
            sum: self.sum.iter().zip(&o.sum).map(|(a, b)| a - b).collect(),
            sumsq: self
                .sumsq
                .iter()
                .zip(&o.sumsq)
                .map(|(a, b)| a - b)
                .collect(),
        }
    }

    /// Log-likelihood of the frames under their own diagonal Gaussian:
    /// `-0.5 n Σ_d (log(2π σ²_d) + 1)`, variances floored at `floor`.
    fn loglik(&self, floor: &[f64]) -> f64 {
        if self.n <= 0.0 {
            return 0.0;
        }
        let s: f64 = self
            .sum
            .iter()
            .zip(&self.sumsq)
            .zip(floor)
            .map(|((&sum, &sumsq), &floor)| {
                let mean = sum / self.n;
                let var = (sumsq / self.n - mean * mean).max(floor);
                (2.0 * std::f64::consts::PI * var).ln() + 1.0
            })
            .sum();
        -0.5 * self.n * s
    }
}

/// Adds an utterance's frames (`dim` values each) to the statistics of
/// their context keys, silence's left out (it is not clustered).
pub fn accumulate(
    stats: &mut HashMap<u32, Stats>,
    keys: &[u32],
    feats: &[f32],
    dim: usize,
    sil: PhoneId,
) {
    for (&key, x) in keys.iter().zip(feats.chunks_exact(dim)) {
        if unpack_key(key).1 != sil {
            stats
                .entry(key)
                .or_insert_with(|| Stats::new(dim))
                .add_frame(x);
        }
    }
}

/// ARPAbet phone classes the context questions ask about (names a phone
/// set lacks are ignored).
const CLASSES: &[&[&str]] = &[
    // Vowels and their subclasses.
    &[
        "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
    ],
    &["IY", "IH", "EY", "EH", "AE"],
    &["AH", "ER"],
    &["AA", "AO", "OW", "UH", "UW"],
    &["IY", "IH", "UH", "UW"],
    &["EH", "EY", "AH", "ER", "OW"],
    &["AA", "AE", "AO", "AW", "AY"],
    &["AW", "AY", "EY", "OW", "OY"],
    &["AO", "OW", "OY", "UH", "UW", "W"],
    // Consonants by manner.
    &[
        "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
        "T", "TH", "V", "W", "Y", "Z", "ZH",
    ],
    &["B", "D", "G", "K", "P", "T"],
    &["DH", "F", "HH", "S", "SH", "TH", "V", "Z", "ZH"],
    &["CH", "JH"],
    &["M", "N", "NG"],
    &["L", "R"],
    &["W", "Y"],
    &["L", "R", "W", "Y", "ER"],
    &["M", "N", "NG", "L", "R", "W", "Y"],
    &["S", "Z", "SH", "ZH", "CH", "JH"],
    // Voicing.
    &[
        "B", "D", "G", "DH", "V", "Z", "ZH", "JH", "M", "N", "NG", "L", "R", "W", "Y",
    ],
    &["P", "T", "K", "F", "TH", "S", "SH", "CH", "HH"],
    &["B", "D", "G", "DH", "V", "Z", "ZH", "JH"],
    // Place.
    &["B", "P", "M", "F", "V", "W"],
    &["B", "P", "M"],
    &["F", "V"],
    &["TH", "DH"],
    &["T", "D", "S", "Z", "N", "L"],
    &["SH", "ZH", "CH", "JH", "R"],
    &[
        "T", "D", "S", "Z", "N", "L", "TH", "DH", "SH", "ZH", "CH", "JH", "R",
    ],
    &["K", "G", "NG"],
    &["HH"],
    &["K", "G", "NG", "W"],
];

/// The questions a node may ask: the state index, then the left and the
/// right context in each class, each single phone, and the word edge.
pub fn questions(phones: &PhoneSet, states_per_phone: usize) -> Vec<Question> {
    let mut classes: Vec<PhoneClass> = Vec::new();
    let mut add = |c: PhoneClass| {
        if c != 0 && !classes.contains(&c) {
            classes.push(c);
        }
    };
    for names in CLASSES {
        add(names
            .iter()
            .filter_map(|n| phones.id(n))
            .filter(|&p| p != phones.sil())
            .fold(0, |c, p| c | class_bit(p)));
    }
    for p in (0..phones.len() as PhoneId).filter(|&p| p != phones.sil()) {
        add(class_bit(p));
    }
    add(BOUNDARY_CLASS);
    let mut qs: Vec<Question> = (0..states_per_phone.min(255))
        .map(|k| Question::State(k as u8))
        .collect();
    qs.extend(classes.iter().map(|&c| Question::Left(c)));
    qs.extend(classes.iter().map(|&c| Question::Right(c)));
    qs
}

/// How far the tree grows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GrowConfig {
    /// Leaves of the whole tree (silence's states included).
    pub leaves: usize,
    /// Fewest frames a leaf may have.
    pub min_count: f64,
}

/// Relative variance floor: a node's variances are at least this share
/// of the pooled variance (keeps a few identical frames from scoring +∞).
const VAR_FLOOR: f64 = 0.01;

/// One context-dependent state's place in a growing tree.
struct Item<'a> {
    left: PhoneId,
    right: PhoneId,
    state: usize,
    stats: &'a Stats,
}

/// A leaf of the growing tree: its items and best split.
struct Leaf {
    phone: PhoneId,
    items: Vec<usize>,
    best: Option<(f64, Question)>,
}

/// A node of a growing tree: a leaf or a split.
enum Grow {
    Leaf,
    Ask(Question, usize, usize),
}

/// Grows the tree from per-key statistics (see [`accumulate`]): one root per
/// non-silence phone, each split by the question with the best likelihood
/// gain whose both sides keep `min_count` frames, the best leaf over all
/// phones first, until `leaves` leaves or no split gains. Silence's states
/// get pdfs `0..states_per_phone` (context-independent); the other leaves
/// follow in phone order, and phones without frames get one leaf each.
pub fn grow(
    stats: &HashMap<u32, Stats>,
    phones: &PhoneSet,
    states_per_phone: usize,
    cfg: GrowConfig,
) -> ContextTree {
    let qs = questions(phones, states_per_phone);
    let sil = phones.sil();
    let dim = stats.values().next().map_or(0, |s| s.sum.len());
    let mut keys: Vec<(&u32, &Stats)> = stats
        .iter()
        .filter(|(k, s)| {
            let (_, ph, _, st) = unpack_key(**k);
            ph != sil && (ph as usize) < phones.len() && st < states_per_phone && s.sum.len() == dim
        })
        .collect();
    // By central phone (each phone's keys one run), then key.
    keys.sort_unstable_by_key(|e| (unpack_key(*e.0).1, *e.0));
    let items: Vec<Item> = keys
        .iter()
        .map(|(&k, s)| {
            let (left, _, right, state) = unpack_key(k);
            Item {
                left,
                right,
                state,
                stats: s,
            }
        })
        .collect();
    let mut pooled = Stats::new(dim);
    for it in &items {
        pooled.add(it.stats);
    }
    let floor: Vec<f64> = (0..dim)
        .map(|d| {
            let n = pooled.n.max(1.0);
            let mean = pooled.sum[d] / n;
            (VAR_FLOOR * (pooled.sumsq[d] / n - mean * mean)).max(1e-6)
        })
        .collect();
    let best_split = |members: &[usize], total: &Stats| -> Option<(f64, Question)> {
        // Pool by left context, right context and state once; every
        // question is then a sum over at most 64 bins.
        let mut by_left = vec![Stats::new(dim); 64];
        let mut by_right = vec![Stats::new(dim); 64];
        let mut by_state = vec![Stats::new(dim); states_per_phone];
        for &i in members {
            let it = &items[i];
            by_left[(it.left & 0x3f) as usize].add(it.stats);
            by_right[(it.right & 0x3f) as usize].add(it.stats);
            by_state[it.state].add(it.stats);
        }
        let parent = total.loglik(&floor);
        let mut best: Option<(f64, Question)> = None;
        for &q in &qs {
            let yes = match q {
                Question::State(k) => by_state[k as usize].clone(),
                Question::Left(c) | Question::Right(c) => {
                    let bins = if matches!(q, Question::Left(_)) {
                        &by_left
                    } else {
                        &by_right
                    };
                    let mut s = Stats::new(dim);
                    for (b, bin) in bins.iter().enumerate() {
                        if c & (1u64 << b) != 0 && bin.n > 0.0 {
                            s.add(bin);
                        }
                    }
                    s
                }
            };
            let no = total.minus(&yes);
            if yes.n < cfg.min_count || no.n < cfg.min_count {
                continue;
            }
            let gain = yes.loglik(&floor) + no.loglik(&floor) - parent;
            // Identical statistics "gain" only rounding error.
            if gain > 1e-9 * parent.abs().max(1.0) && best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, q));
            }
        }
        best
    };
    let new_leaf = |phone: PhoneId, members: Vec<usize>| -> Leaf {
        let mut total = Stats::new(dim);
        for &i in &members {
            total.add(items[i].stats);
        }
        let best = best_split(&members, &total);
        Leaf {
            phone,
            items: members,
            best,
        }
    };
    // Per phone: its growing tree's nodes (root first).
    let mut trees: Vec<Vec<Grow>> = (0..phones.len()).map(|_| Vec::new()).collect();
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut start = 0;
    for ph in (0..phones.len() as PhoneId).filter(|&p| p != sil) {
        let end = start
            + keys[start..]
                .iter()
                .take_while(|(k, _)| unpack_key(**k).1 == ph)
                .count();
        trees[ph as usize].push(Grow::Leaf);
        leaves.push(new_leaf(ph, (start..end).collect()));
        start = end;
    }
    // Where each leaf sits in its phone's tree.
    let mut at: Vec<usize> = vec![0; leaves.len()];
    while leaves.len() + states_per_phone < cfg.leaves {
        let Some((i, q)) = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.best.map(|(g, q)| (i, g, q)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _, q)| (i, q))
        else {
            break;
        };
        let phone = leaves[i].phone;
        let (yes, no): (Vec<usize>, Vec<usize>) = leaves[i].items.iter().partition(|&&k| {
            let it = &items[k];
            q.ask(it.left, it.right, it.state)
        });
        let tree = &mut trees[phone as usize];
        let (y, n) = (tree.len(), tree.len() + 1);
        tree[at[i]] = Grow::Ask(q, y, n);
        tree.push(Grow::Leaf);
        tree.push(Grow::Leaf);
        let node_no = n;
        at[i] = y;
        leaves[i] = new_leaf(phone, yes);
        at.push(node_no);
        leaves.push(new_leaf(phone, no));
    }
    // Flatten: silence's state chain, then each phone's tree in pre-order
    // (children after parents), leaves numbered as they are reached.
    let mut out = ContextTree {
        roots: vec![0; phones.len()],
        nodes: Vec::new(),
    };
    let mut next_pdf: PdfId = 0;
    out.roots[sil as usize] = 0;
    // Silence: `Ask(State(k), its leaf, the next question)`, the last state a bare leaf.
    for k in 0..states_per_phone {
        let i = out.nodes.len() as u32;
        if k + 1 == states_per_phone {
            out.nodes.push(TreeNode::Leaf(next_pdf));
        } else {
            out.nodes
                .push(TreeNode::Ask(Question::State(k as u8), i + 1, i + 2));
            out.nodes.push(TreeNode::Leaf(next_pdf));
        }
        next_pdf += 1;
    }
    for ph in (0..phones.len() as PhoneId).filter(|&p| p != sil) {
        out.roots[ph as usize] = out.nodes.len() as u32;
        flatten(&trees[ph as usize], 0, &mut out.nodes, &mut next_pdf);
    }
    out
}

/// Appends node `i` of a growing tree and its subtree in pre-order.
fn flatten(tree: &[Grow], i: usize, out: &mut Vec<TreeNode>, next_pdf: &mut PdfId) {
    match tree[i] {
        Grow::Leaf => {
            out.push(TreeNode::Leaf(*next_pdf));
            *next_pdf += 1;
        }
        Grow::Ask(q, yes, no) => {
            let me = out.len();
            out.push(TreeNode::Leaf(0));
            let y = out.len() as u32;
            flatten(tree, yes, out, next_pdf);
            let n = out.len() as u32;
            flatten(tree, no, out, next_pdf);
            out[me] = TreeNode::Ask(q, y, n);
        }
    }
}

/// The topology of a grown tree: `reference`'s HMMs with one pdf per leaf,
/// `pdfs[phone][state]` the leaf at the word edges, transitions reset (to
/// be estimated from the relabeled alignment).
pub fn tree_topology(reference: &Topology, tree: ContextTree, cross_word: bool) -> Topology {
    let pdfs: Vec<Vec<PdfId>> = (0..reference.pdfs.len() as PhoneId)
        .map(|ph| {
            (0..reference.states_per_phone)
                .map(|s| tree.pdf(BOUNDARY, ph, BOUNDARY, s))
                .collect()
        })
        .collect();
    Topology {
        states_per_phone: reference.states_per_phone,
        pdfs,
        self_loop_logprob: vec![0.75f32.ln(); tree.num_leaves()],
        context: Vec::new(),
        cross_word,
        tree: Some(tree),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::hmm::context_key;

    /// `n` frames of 2-d data around `mean` (±1 alternately).
    fn frames(mean: f32, n: usize) -> Stats {
        let mut s = Stats::new(2);
        for t in 0..n {
            let e = if t % 2 == 0 { 1.0 } else { -1.0 };
            s.add_frame(&[mean + e, mean - e]);
        }
        s
    }

    /// Phone AH (state 1 only) in right contexts AA, IY (vowels) and T, K
    /// (stops), 200 frames each; `shift` is added to the mean before a vowel.
    fn case(shift: f32, n: usize) -> (PhoneSet, HashMap<u32, Stats>) {
        let phones = PhoneSet::arpabet();
        let id = |n| phones.id(n).unwrap();
        let mut stats = HashMap::new();
        for (r, vowel) in [("AA", true), ("IY", true), ("T", false), ("K", false)] {
            let mean = if vowel { shift } else { 0.0 };
            stats.insert(context_key(id("S"), id("AH"), id(r), 1), frames(mean, n));
        }
        (phones, stats)
    }

    /// Frames per pdf when every key is mapped through the tree.
    fn leaf_counts(tree: &ContextTree, stats: &HashMap<u32, Stats>) -> HashMap<PdfId, f64> {
        let mut out = HashMap::new();
        for (&k, s) in stats {
            let (l, ph, r, st) = unpack_key(k);
            *out.entry(tree.pdf(l, ph, r, st)).or_default() += s.n;
        }
        out
    }

    #[test]
    fn splits_where_statistics_differ() {
        let (phones, stats) = case(3.0, 200);
        let cfg = GrowConfig {
            leaves: 1000,
            min_count: 100.0,
        };
        let tree = grow(&stats, &phones, 3, cfg);
        tree.validate(tree.num_leaves(), phones.len(), 3).unwrap();
        let ah = phones.id("AH").unwrap();
        let TreeNode::Ask(Question::Right(c), _, _) = tree.nodes[tree.roots[ah as usize] as usize]
        else {
            panic!("first split is not on the right context: {tree:?}");
        };
        let bit = |n| class_bit(phones.id(n).unwrap());
        assert!(c & bit("AA") != 0 && c & bit("IY") != 0, "{c:b}");
        assert!(c & bit("T") == 0 && c & bit("K") == 0, "{c:b}");
        // Within each side the statistics are identical: no further split.
        let counts = leaf_counts(&tree, &stats);
        assert_eq!(counts.len(), 2, "{tree:?}");
        // Silence: 3 leaves, the other 38 phones one each, AH two.
        assert_eq!(tree.num_leaves(), 3 + 38 + 2);
        let sil = phones.sil();
        let sil_pdfs: Vec<_> = (0..3).map(|s| tree.pdf(BOUNDARY, sil, 5, s)).collect();
        assert_eq!(sil_pdfs, [0, 1, 2]);
    }

    #[test]
    fn identical_statistics_do_not_split() {
        let (phones, stats) = case(0.0, 200);
        let cfg = GrowConfig {
            leaves: 1000,
            min_count: 1.0,
        };
        let tree = grow(&stats, &phones, 3, cfg);
        assert_eq!(tree.num_leaves(), 3 + 39);
    }

    #[test]
    fn min_count_and_target_leaves_are_respected() {
        // Every right context its own mean: each split gains.
        let phones = PhoneSet::arpabet();
        let mut stats = HashMap::new();
        // Two central phones, contexts on both sides (keys sort by left
        // context first, so each phone's keys are not one run of keys).
        for ph in ["AH", "T"].map(|n| phones.id(n).unwrap()) {
            for (i, r) in (1..20).enumerate() {
                for st in 0..3 {
                    stats.insert(
                        context_key(r, ph, r, st),
                        frames(i as f32 + st as f32 * 10.0, 60 + 10 * i),
                    );
                }
            }
        }
        let total: f64 = stats.values().map(|s| s.n).sum();
        for min_count in [100.0, 400.0] {
            let cfg = GrowConfig {
                leaves: 1000,
                min_count,
            };
            let tree = grow(&stats, &phones, 3, cfg);
            let counts = leaf_counts(&tree, &stats);
            assert!(counts.len() > 2);
            assert_eq!(counts.values().sum::<f64>(), total);
            assert_eq!(
                counts.len() + 37 + 3,
                tree.num_leaves(),
                "every phone's frames kept"
            );
            assert!(
                counts.values().all(|&n| n >= min_count),
                "{min_count}: {counts:?}"
            );
        }
        for leaves in [42, 45, 60] {
            let cfg = GrowConfig {
                leaves,
                min_count: 50.0,
            };
            let tree = grow(&stats, &phones, 3, cfg);
            assert_eq!(tree.num_leaves(), leaves);
        }
    }

    #[test]
    fn the_tree_topology_maps_keys_to_leaves() {
        let (phones, stats) = case(3.0, 200);
        let cfg = GrowConfig {
            leaves: 100,
            min_count: 100.0,
        };
        let tree = grow(&stats, &phones, 3, cfg);
        let mono = Topology::monophone(&phones, 3);
        let topo = tree_topology(&mono, tree, true);
        topo.validate(&phones).unwrap();
        let id = |n| phones.id(n).unwrap();
        let (s, ah) = (id("S"), id("AH"));
        assert_ne!(
            topo.pdf_in_context(s, ah, id("AA"), 1),
            topo.pdf_in_context(s, ah, id("T"), 1)
        );
        assert_eq!(topo.pdf(phones.sil(), 2), 2);
    }
}
