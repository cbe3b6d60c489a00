//! A phonetic decision tree that ties context-dependent HMM states to pdfs:
//! one root per central phone, questions on the state index and on the
//! left and right context's phone class, a pdf at every leaf.
//!
//! The trainer grows it (`train::tree`); the aligner and the decoder's
//! network only walk it, through [`crate::search::hmm::Topology::pdf_in_context`].

use crate::error::{Error, Result};
use crate::search::hmm::{PdfId, BOUNDARY};
use crate::search::lexicon::PhoneId;
use serde::{Deserialize, Serialize};

/// A set of contexts: bit `p` for phone `p`, bit 63 for [`BOUNDARY`]
/// (a word edge, silence or the utterance edge).
pub type PhoneClass = u64;

/// The [`PhoneClass`] bit of a context.
pub fn class_bit(context: PhoneId) -> PhoneClass {
    // Contexts are phones below 62 or BOUNDARY (63); the mask keeps any
    // other value from overflowing the shift.
    1u64 << (context & 0x3f)
}

/// What a node asks about a (left, phone, right, state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Question {
    /// Is the state index this one?
    State(u8),
    /// Is the left context in this class?
    Left(PhoneClass),
    /// Is the right context in this class?
    Right(PhoneClass),
}

impl Question {
    /// The answer for one context-dependent state.
    pub fn ask(&self, left: PhoneId, right: PhoneId, state: usize) -> bool {
        match *self {
            Question::State(k) => state == k as usize,
            Question::Left(class) => class & class_bit(left) != 0,
            Question::Right(class) => class & class_bit(right) != 0,
        }
    }
}

/// A tree node: a pdf, or a question and the indices of its yes and no
/// children (always after the node, so walks terminate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreeNode {
    Leaf(PdfId),
    Ask(Question, u32, u32),
}

/// The trees of all central phones, in one node array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextTree {
    /// Per phone: the index of its root in `nodes`.
    pub roots: Vec<u32>,
    pub nodes: Vec<TreeNode>,
}

impl ContextTree {
    /// The pdf of `state` of `phone` between `left` and `right` (phones or
    /// [`BOUNDARY`]). The tree must have passed [`ContextTree::validate`].
    pub fn pdf(&self, left: PhoneId, phone: PhoneId, right: PhoneId, state: usize) -> PdfId {
        let mut i = self.roots[phone as usize] as usize;
        loop {
            match self.nodes[i] {
                TreeNode::Leaf(pdf) => return pdf,
                TreeNode::Ask(q, yes, no) => {
                    i = if q.ask(left, right, state) { yes } else { no } as usize;
                }
            }
        }
    }

    /// Number of leaves.
    pub fn num_leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, TreeNode::Leaf(_)))
            .count()
    }

    /// Checks a tree read from a model file: a root per phone, children
    /// after their parent and in range, pdfs below `num_pdfs`, state
    /// questions below `states_per_phone`.
    pub fn validate(
        &self,
        num_pdfs: usize,
        num_phones: usize,
        states_per_phone: usize,
    ) -> Result<()> {
        let bad = |msg: String| Err(Error::config("topology.tree", msg));
        let n = self.nodes.len();
        if self.roots.len() != num_phones {
            return bad(format!(
                "{} roots for {num_phones} phones",
                self.roots.len()
            ));
        }
        if let Some(r) = self.roots.iter().find(|&&r| r as usize >= n) {
            return bad(format!("root {r} out of range ({n} nodes)"));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            match *node {
                TreeNode::Leaf(pdf) if pdf as usize >= num_pdfs => {
                    return bad(format!("node {i}: pdf {pdf} out of range"));
                }
                TreeNode::Ask(q, yes, no) => {
                    if [yes, no]
                        .iter()
                        .any(|&c| c as usize <= i || c as usize >= n)
                    {
                        return bad(format!(
                            "node {i}: children {yes}, {no} must follow it and be below {n}"
                        ));
                    }
                    if let Question::State(k) = q {
                        if k as usize >= states_per_phone {
                            return bad(format!("node {i}: state {k} out of range"));
                        }
                    }
                }
                TreeNode::Leaf(_) => {}
            }
        }
        Ok(())
    }
}

/// The class of a word edge alone.
pub const BOUNDARY_CLASS: PhoneClass = 1 << BOUNDARY;

#[cfg(test)]
mod tests {
    use super::*;

    /// Phone 1's tree: state 0 → pdf 10; else right context in {2, edge}
    /// → pdf 11, else pdf 12. Phone 0: pdf 0.
    fn tree() -> ContextTree {
        ContextTree {
            roots: vec![0, 1],
            nodes: vec![
                TreeNode::Leaf(0),
                TreeNode::Ask(Question::State(0), 2, 3),
                TreeNode::Leaf(10),
                TreeNode::Ask(Question::Right(class_bit(2) | BOUNDARY_CLASS), 4, 5),
                TreeNode::Leaf(11),
                TreeNode::Leaf(12),
            ],
        }
    }

    #[test]
    fn walks_questions_to_leaves() {
        let t = tree();
        t.validate(13, 2, 3).unwrap();
        assert_eq!(t.pdf(BOUNDARY, 0, BOUNDARY, 2), 0);
        assert_eq!(t.pdf(3, 1, 3, 0), 10);
        assert_eq!(t.pdf(3, 1, 2, 1), 11);
        assert_eq!(t.pdf(3, 1, BOUNDARY, 2), 11);
        assert_eq!(t.pdf(3, 1, 3, 2), 12);
        assert_eq!(t.num_leaves(), 4);
    }

    #[test]
    fn bad_trees_are_refused() {
        let mut t = tree();
        assert!(t.validate(12, 2, 3).is_err(), "pdf out of range");
        assert!(t.validate(13, 3, 3).is_err(), "root missing");
        let mut s = t.clone();
        s.nodes[1] = TreeNode::Ask(Question::State(3), 2, 3);
        assert!(s.validate(13, 2, 3).is_err(), "state out of range");
        t.nodes[3] = TreeNode::Ask(Question::Left(1), 1, 5);
        assert!(t.validate(13, 2, 3).is_err(), "cycle");
        t.nodes[3] = TreeNode::Ask(Question::Left(1), 4, 9);
        assert!(t.validate(13, 2, 3).is_err(), "child out of range");
        t.roots[0] = 6;
        assert!(t.validate(13, 2, 3).is_err(), "root out of range");
    }
}
