//! Buffer layout helpers: splitting a buffer into blocks of whole elements,
//! borrowing two disjoint blocks of one buffer, and the varcount layouts
//! (`counts` and `displacements`, in bytes) of the `v` collectives.

use std::ops::Range;

/// Splits `len` bytes of `element_size`-byte elements into `parts` contiguous
/// byte ranges of whole elements; the first `elements % parts` ranges hold one
/// element more. Ranges may be empty when there are fewer elements than parts.
pub(crate) fn partition(len: usize, element_size: usize, parts: usize) -> Vec<Range<usize>> {
    let elements = len / element_size;
    let (base, extra) = (elements / parts, elements % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let count = (base + usize::from(i < extra)) * element_size;
            let range = start..start + count;
            start += count;
            range
        })
        .collect()
}

/// `parts` consecutive blocks of `block` bytes each.
pub(crate) fn equal_blocks(block: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts).map(|i| i * block..(i + 1) * block).collect()
}

/// The byte range covered by blocks `first..end` (contiguous by construction).
pub(crate) fn span(blocks: &[Range<usize>], first: usize, end: usize) -> Range<usize> {
    if first >= end {
        return blocks.get(first).map_or(0, |b| b.start)..blocks.get(first).map_or(0, |b| b.start);
    }
    blocks[first].start..blocks[end - 1].end
}

/// Borrows `buffer[send]` to read and `buffer[receive]` to write at once;
/// the two ranges must not overlap unless one is empty.
pub(crate) fn send_and_receive_parts(
    buffer: &mut [u8],
    send: Range<usize>,
    receive: Range<usize>,
) -> (&[u8], &mut [u8]) {
    if send.is_empty() {
        return (&[], &mut buffer[receive]);
    }
    if receive.is_empty() {
        return (&buffer[send], &mut []);
    }
    if send.end <= receive.start {
        let (low, high) = buffer.split_at_mut(receive.start);
        (&low[send], &mut high[..receive.len()])
    } else {
        assert!(
            receive.end <= send.start,
            "overlapping send and receive blocks"
        );
        let (low, high) = buffer.split_at_mut(send.start);
        (&high[..send.len()], &mut low[receive])
    }
}

/// A read-only varcount layout: block `i` is `buffer[displacements[i]..][..counts[i]]`
/// (the send side of `MPI_Scatterv`/`MPI_Alltoallv`; counts in bytes).
#[derive(Clone, Copy, Debug)]
pub struct Partition<'a> {
    /// The whole buffer.
    pub buffer: &'a [u8],
    /// Bytes in each rank's block.
    pub counts: &'a [usize],
    /// Offset of each rank's block.
    pub displacements: &'a [usize],
}

/// A writable varcount layout (the receive side of `MPI_Gatherv`,
/// `MPI_Allgatherv`, `MPI_Alltoallv`); blocks must not overlap.
#[derive(Debug)]
pub struct PartitionMut<'a> {
    /// The whole buffer.
    pub buffer: &'a mut [u8],
    /// Bytes in each rank's block.
    pub counts: &'a [usize],
    /// Offset of each rank's block.
    pub displacements: &'a [usize],
}

/// Checks a varcount layout for `size` ranks over `len` bytes and returns its
/// block ranges; `disjoint` also requires that non-empty blocks not overlap.
pub(crate) fn layout(
    len: usize,
    counts: &[usize],
    displacements: &[usize],
    size: usize,
    disjoint: bool,
) -> Result<Vec<Range<usize>>, String> {
    if counts.len() != size || displacements.len() != size {
        return Err(format!(
            "{} counts and {} displacements for {size} ranks",
            counts.len(),
            displacements.len()
        ));
    }
    let mut blocks = Vec::with_capacity(size);
    for (rank, (&count, &displacement)) in counts.iter().zip(displacements).enumerate() {
        match displacement.checked_add(count) {
            Some(end) if end <= len => blocks.push(displacement..end),
            _ => {
                return Err(format!(
                    "block of rank {rank} ({count} bytes at {displacement}) exceeds the {len}-byte buffer"
                ))
            }
        }
    }
    if disjoint {
        let mut sorted: Vec<&Range<usize>> = blocks.iter().filter(|b| !b.is_empty()).collect();
        sorted.sort_by_key(|b| b.start);
        if sorted.windows(2).any(|w| w[0].end > w[1].start) {
            return Err("receive blocks overlap".to_string());
        }
    }
    Ok(blocks)
}

/// Checks that `len` is a whole number of `element_size`-byte elements.
pub(crate) fn check_elements(len: usize, element_size: usize) -> Result<(), String> {
    if element_size == 0 {
        Err("element size is zero".to_string())
    } else if len % element_size != 0 {
        Err(format!(
            "{len} bytes is not a whole number of {element_size}-byte elements"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keeps_whole_elements_and_covers_the_buffer() {
        let blocks = partition(10 * 4, 4, 3);
        assert_eq!(blocks, vec![0..16, 16..28, 28..40]);
        let blocks = partition(2 * 8, 8, 4);
        assert_eq!(blocks, vec![0..8, 8..16, 16..16, 16..16]);
        assert_eq!(span(&blocks, 1, 4), 8..16);
    }

    #[test]
    fn overlapping_layout_is_refused() {
        assert!(layout(10, &[4, 4], &[0, 3], 2, true).is_err());
        assert!(layout(10, &[4, 4], &[0, 3], 2, false).is_ok());
        assert!(layout(10, &[4, 0], &[0, 2], 2, true).is_ok());
        assert!(layout(10, &[4, 7], &[0, 4], 2, true).is_err());
    }
}
