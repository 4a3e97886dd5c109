//! `PMI_process_mapping`: which node each rank runs on, as MPICH's Hydra,
//! Slurm's PMI plugins and mpirt's `mpirun` publish it in the PMI key-value
//! space.
//!
//! The value is a vector of blocks, `(vector,(start,nodes,ppn),...)`: each
//! block gives `ppn` consecutive ranks to node `start`, the next `ppn` to
//! node `start+1`, and so on for `nodes` nodes; blocks follow each other in
//! rank order. When the blocks describe fewer ranks than the job has, the
//! description repeats from its first block (MPICH's reading), so
//! `(vector,(0,2,1))` for four ranks means nodes 0, 1, 0, 1 (round-robin).
//!
//! Decoding never panics and never allocates in proportion to the numbers it
//! reads, only to the job size it is asked about: any bytes give a mapping or
//! an error (property-tested below).

use std::fmt;

/// One block: `ppn` ranks on each of `nodes` nodes from `start` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The first node's index.
    pub start: u32,
    /// How many consecutive nodes the block covers.
    pub nodes: u32,
    /// Ranks per node in this block.
    pub ppn: u32,
}

/// A decoded `PMI_process_mapping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMapping {
    blocks: Vec<Block>,
}

/// Why a mapping could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// It does not start with `(vector,` and end with `)`.
    #[error("not a (vector,...) mapping")]
    NotVector,
    /// A block is not `(start,nodes,ppn)` of non-negative integers.
    #[error("bad block {0:?}")]
    BadBlock(String),
    /// The blocks place no rank at all (every `nodes` or `ppn` is 0).
    #[error("the mapping places no rank")]
    Empty,
}

impl ProcessMapping {
    /// Decodes a mapping value, e.g. `(vector,(0,2,2))`. Spaces are ignored.
    pub fn parse(text: &str) -> Result<ProcessMapping, MappingError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let inner = compact
            .strip_prefix("(vector,")
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or(MappingError::NotVector)?;
        let mut blocks = Vec::new();
        let mut rest = inner;
        while !rest.is_empty() {
            let open = rest
                .strip_prefix('(')
                .ok_or_else(|| MappingError::BadBlock(rest.chars().take(32).collect()))?;
            let end = open
                .find(')')
                .ok_or_else(|| MappingError::BadBlock(rest.chars().take(32).collect()))?;
            let fields: Vec<&str> = open[..end].split(',').collect();
            let bad = || MappingError::BadBlock(open[..end].chars().take(32).collect());
            let [start, nodes, ppn] = fields[..] else {
                return Err(bad());
            };
            let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
            blocks.push(Block {
                start: number(start)?,
                nodes: number(nodes)?,
                ppn: number(ppn)?,
            });
            rest = &open[end + 1..];
            if let Some(after_comma) = rest.strip_prefix(',') {
                if after_comma.is_empty() {
                    return Err(MappingError::BadBlock(String::new()));
                }
                rest = after_comma;
            } else if !rest.is_empty() {
                return Err(MappingError::BadBlock(rest.chars().take(32).collect()));
            }
        }
        if blocks.iter().all(|b| b.nodes == 0 || b.ppn == 0) {
            return Err(MappingError::Empty);
        }
        Ok(ProcessMapping { blocks })
    }

    /// The node of every rank of a job of `size` ranks (repeating the
    /// blocks if they describe fewer ranks).
    pub fn nodes_of(&self, size: usize) -> Vec<u32> {
        let mut nodes = Vec::with_capacity(size);
        // `parse` guarantees at least one block places a rank, so each pass
        // over the blocks adds at least one and the loop ends.
        while nodes.len() < size {
            // Blocks that place nobody are skipped: looping over their
            // (possibly billions of) nodes would do nothing, slowly.
            for block in self.blocks.iter().filter(|b| b.ppn > 0) {
                for node in 0..block.nodes {
                    for _ in 0..block.ppn {
                        if nodes.len() == size {
                            return nodes;
                        }
                        nodes.push(block.start.saturating_add(node));
                    }
                }
            }
        }
        nodes
    }

    /// The mapping that places rank `r` on `nodes[r]`, written out without
    /// relying on repetition: consecutive ranks on one node form a run, and
    /// runs of equal length on consecutive nodes merge into one block.
    pub fn from_nodes(nodes: &[u32]) -> ProcessMapping {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &node in nodes {
            match runs.last_mut() {
                Some((last, count)) if *last == node => *count += 1,
                _ => runs.push((node, 1)),
            }
        }
        let mut blocks: Vec<Block> = Vec::new();
        for (node, count) in runs {
            match blocks.last_mut() {
                Some(b) if b.ppn == count && b.start.checked_add(b.nodes) == Some(node) => {
                    b.nodes += 1
                }
                _ => blocks.push(Block {
                    start: node,
                    nodes: 1,
                    ppn: count,
                }),
            }
        }
        ProcessMapping { blocks }
    }

    /// [`from_nodes`](Self::from_nodes), shortened to its smallest
    /// repeating prefix (round-robin over many hosts would otherwise
    /// outgrow a PMI value).
    pub fn from_nodes_compact(nodes: &[u32]) -> ProcessMapping {
        let period = (1..=nodes.len())
            .find(|&p| nodes.iter().enumerate().all(|(i, n)| *n == nodes[i % p]))
            .unwrap_or(nodes.len());
        ProcessMapping::from_nodes(&nodes[..period])
    }

    /// Whether ranks `a` and `b` of a job of `size` share a node.
    pub fn same_node(&self, size: usize, a: usize, b: usize) -> bool {
        let nodes = self.nodes_of(size);
        nodes.get(a).is_some() && nodes.get(a) == nodes.get(b)
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
}

impl fmt::Display for ProcessMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(vector")?;
        for b in &self.blocks {
            write!(f, ",({},{},{})", b.start, b.nodes, b.ppn)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hydra_and_slurm_values_decode() {
        let one = ProcessMapping::parse("(vector,(0,1,4))").unwrap();
        assert_eq!(one.nodes_of(4), [0, 0, 0, 0]);
        let two = ProcessMapping::parse("(vector,(0,2,2))").unwrap();
        assert_eq!(two.nodes_of(4), [0, 0, 1, 1]);
        let cyclic = ProcessMapping::parse("(vector, (0,2,1))").unwrap();
        assert_eq!(cyclic.nodes_of(5), [0, 1, 0, 1, 0]);
        let uneven = ProcessMapping::parse("(vector,(0,1,3),(1,1,1))").unwrap();
        assert_eq!(uneven.nodes_of(4), [0, 0, 0, 1]);
        assert!(two.same_node(4, 0, 1));
        assert!(!two.same_node(4, 1, 2));
        assert!(!two.same_node(4, 1, 9));
    }

    #[test]
    fn junk_is_an_error() {
        for text in [
            "",
            "(vector)x",
            "(vector,(0,1))",
            "(vector,(0,1,2),)",
            "(vector,(a,1,2))",
            "(vector,(0,1,2)(1,1,1))",
            "(vector,(0,0,2))",
            "(vector,(0,1,-1))",
            "(list,(0,1,1))",
        ] {
            assert!(ProcessMapping::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn encoding_merges_equal_runs() {
        assert_eq!(
            ProcessMapping::from_nodes(&[0, 0, 1, 1]).to_string(),
            "(vector,(0,2,2))"
        );
        assert_eq!(
            ProcessMapping::from_nodes(&[0, 0, 0, 1]).to_string(),
            "(vector,(0,1,3),(1,1,1))"
        );
        assert_eq!(
            ProcessMapping::from_nodes_compact(&[0, 1, 2, 0, 1, 2, 0]).to_string(),
            "(vector,(0,3,1))"
        );
    }

    proptest! {
        #[test]
        fn any_text_decodes_or_fails_cleanly(text in "\\PC{0,80}", size in 0usize..50) {
            if let Ok(mapping) = ProcessMapping::parse(&text) {
                prop_assert_eq!(mapping.nodes_of(size).len(), size);
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = ProcessMapping::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn near_misses_decode_or_fail_cleanly(text in "\\(vector(,\\((-?[0-9]{1,11},){0,3}[0-9]{0,3}\\)){0,4}\\)?", size in 0usize..50) {
            if let Ok(mapping) = ProcessMapping::parse(&text) {
                prop_assert_eq!(mapping.nodes_of(size).len(), size);
                prop_assert_eq!(ProcessMapping::parse(&mapping.to_string()), Ok(mapping));
            }
        }

        #[test]
        fn encode_then_decode_gives_the_nodes_back(nodes in proptest::collection::vec(0u32..5, 1..40)) {
            for mapping in [ProcessMapping::from_nodes(&nodes), ProcessMapping::from_nodes_compact(&nodes)] {
                let decoded = ProcessMapping::parse(&mapping.to_string()).unwrap();
                prop_assert_eq!(decoded.nodes_of(nodes.len()), nodes.clone());
            }
        }
    }
}
