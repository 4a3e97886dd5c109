//! Ranks' stdout and stderr, line by line. One thread per pipe reads lines
//! and either forwards each to the launcher's own stdout or stderr, or hands
//! it to the job's event loop to keep in the [`crate::Outcome`].
//!
//! A forwarded line is written whole, with its optional `[rank] ` prefix and
//! its newline, by one `write_all` while holding the stream's lock, so lines
//! of different ranks never mix. A last line without a newline is forwarded
//! with one; a line longer than [`MAX_LINE_BYTES`] is cut into pieces of that
//! size, so a rank that never writes a newline cannot grow the launcher's
//! memory without bound.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Longest piece forwarded as one line.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Which of a rank's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Reads `reader` to its end, calling `on_line` with each line without its
/// newline (a last unterminated line included). A read error ends the stream
/// as end-of-file would, after the partial line is delivered.
pub fn for_each_line(reader: impl Read, mut on_line: impl FnMut(&[u8])) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(MAX_LINE_BYTES, reader);
    let mut line = Vec::new();
    // Set when an overlong line was just cut: a newline right after the cut
    // ends that line, and must not deliver an extra empty one.
    let mut just_cut = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !line.is_empty() {
                    on_line(&line);
                }
                return Err(e);
            }
        };
        if available.is_empty() {
            if !line.is_empty() {
                on_line(&line);
            }
            return Ok(());
        }
        let room = MAX_LINE_BYTES - line.len();
        let window = &available[..available.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(0) if just_cut => reader.consume(1),
            Some(end) if line.is_empty() => {
                // The common case: a whole line in the buffer, passed on without copying.
                on_line(&window[..end]);
                reader.consume(end + 1);
            }
            Some(end) => {
                line.extend_from_slice(&window[..end]);
                reader.consume(end + 1);
                on_line(&line);
                line.clear();
            }
            None => {
                let taken = window.len();
                line.extend_from_slice(window);
                reader.consume(taken);
                if line.len() >= MAX_LINE_BYTES {
                    on_line(&line);
                    line.clear();
                    just_cut = true;
                    continue;
                }
            }
        }
        just_cut = false;
    }
}

/// Writes `prefix`, `line` and a newline to the launcher's `stream` with one
/// `write_all` under the stream's lock. Errors (a closed terminal, a full
/// disk) are ignored on purpose: the caller keeps draining the rank's pipe so
/// the rank never blocks on it.
pub fn forward_line(stream: StreamKind, prefix: &[u8], line: &[u8], scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(prefix);
    scratch.extend_from_slice(line);
    scratch.push(b'\n');
    let _ = match stream {
        StreamKind::Stdout => io::stdout().lock().write_all(scratch),
        StreamKind::Stderr => io::stderr().lock().write_all(scratch),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for_each_line(input, |l| lines.push(l.to_vec())).unwrap();
        lines
    }

    #[test]
    fn splits_on_newlines_and_keeps_an_unterminated_last_line() {
        assert_eq!(
            lines_of(b"a\nbb\n\nccc"),
            vec![b"a".to_vec(), b"bb".to_vec(), b"".to_vec(), b"ccc".to_vec()]
        );
        assert_eq!(lines_of(b""), Vec::<Vec<u8>>::new());
        assert_eq!(lines_of(b"x\n"), vec![b"x".to_vec()]);
    }

    #[test]
    fn lines_spanning_reads_are_joined() {
        // A reader that hands out one byte at a time.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = first;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut lines = Vec::new();
        for_each_line(Trickle(b"hello\nworld"), |l| lines.push(l.to_vec())).unwrap();
        assert_eq!(lines, vec![b"hello".to_vec(), b"world".to_vec()]);
    }

    #[test]
    fn overlong_lines_are_cut() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        input.push(b'\n');
        let lines = lines_of(&input);
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_LINE_BYTES, MAX_LINE_BYTES, 10]
        );
        let mut exact = vec![b'y'; MAX_LINE_BYTES];
        exact.extend_from_slice(b"\nnext\n");
        assert_eq!(
            lines_of(&exact).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_LINE_BYTES, 4]
        );
    }
}
