//! An incremental Server-Sent Events parser (WHATWG HTML §9.2 framing).
//!
//! Bytes arrive in arbitrary pieces: split mid-line, mid-CRLF, mid-UTF-8 character. Lines end
//! with CRLF, LF or CR. A blank line ends a *block*: the raw bytes since the previous block
//! (kept so that untouched events pass through byte for byte) and its parsed fields (`event`,
//! `data` lines joined with `\n`, `id`, `retry`; comments and unknown fields are kept in the
//! raw bytes only). A block's size is bounded: beyond `max_event` bytes the parser fails, and
//! the caller fails closed.

/// One block of the stream: an event, or comments / blank lines without data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    /// The exact bytes of the block, including its terminating blank line.
    pub raw: Vec<u8>,
    pub event: Option<String>,
    /// `data` lines joined with `\n`; `None` when the block has no `data` field.
    pub data: Option<Vec<u8>>,
    pub id: Option<String>,
    pub retry: Option<String>,
}

impl Block {
    /// The event name clients see (`message` when none is given).
    pub fn name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// A completed block as the parser hands it over: borrowed from the parser's buffers, which
/// are reused for the next block (no allocation per event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef<'a> {
    /// The exact bytes of the block, including its terminating blank line.
    pub raw: &'a [u8],
    pub event: Option<&'a str>,
    /// `data` lines joined with `\n`; `None` when the block has no `data` field.
    pub data: Option<&'a [u8]>,
    pub id: Option<&'a str>,
    pub retry: Option<&'a str>,
}

impl BlockRef<'_> {
    /// The event name clients see (`message` when none is given).
    pub fn name(&self) -> &str {
        self.event.unwrap_or("message")
    }

    pub fn to_block(&self) -> Block {
        Block {
            raw: self.raw.to_vec(),
            event: self.event.map(str::to_string),
            data: self.data.map(<[u8]>::to_vec),
            id: self.id.map(str::to_string),
            retry: self.retry.map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event exceeds {max} bytes")]
    TooLarge { max: usize },
}

#[derive(Debug)]
pub struct Parser {
    max_event: usize,
    /// Raw bytes of the current block (complete lines and the current partial line).
    raw: Vec<u8>,
    /// Where the current (unterminated) line starts in `raw`.
    line_start: usize,
    /// The last byte seen was a CR: a following LF belongs to the same line ending.
    skip_lf: bool,
    /// The current block's fields (buffers kept across blocks).
    event: String,
    has_event: bool,
    data: Vec<u8>,
    has_data: bool,
    id: Option<String>,
    retry: Option<String>,
}

impl Parser {
    pub fn new(max_event: usize) -> Parser {
        Parser {
            max_event,
            raw: Vec::new(),
            line_start: 0,
            skip_lf: false,
            event: String::new(),
            has_event: false,
            data: Vec::new(),
            has_data: false,
            id: None,
            retry: None,
        }
    }

    /// Bytes of an unfinished block held by the parser.
    pub fn pending(&self) -> usize {
        self.raw.len()
    }

    /// Adds `input`; appends the blocks it completes to `blocks`.
    pub fn feed(&mut self, input: &[u8], blocks: &mut Vec<Block>) -> Result<(), SseError> {
        self.feed_each(input, |b| blocks.push(b.to_block()))
    }

    /// Adds `input`; calls `f` with each block it completes, in order.
    pub fn feed_each(
        &mut self,
        mut input: &[u8],
        mut f: impl FnMut(&BlockRef<'_>),
    ) -> Result<(), SseError> {
        // The first byte after a CR decides: an LF completes the CRLF, anything else starts a
        // new line. Either way the CR is settled (a chunk of just "\n" must not leave it open,
        // or the next LF would be swallowed too and two events would merge).
        if self.skip_lf && !input.is_empty() {
            self.skip_lf = false;
            if let Some((&b'\n', rest)) = input.split_first() {
                self.raw.push(b'\n');
                self.line_start = self.raw.len();
                input = rest;
            }
        }
        while !input.is_empty() {
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.raw.extend_from_slice(input);
                    input = &[];
                }
                Some(i) => {
                    let line_end = self.raw.len() + i;
                    self.raw.extend_from_slice(&input[..=i]);
                    let mut rest = &input[i + 1..];
                    if input[i] == b'\r' {
                        match rest.first() {
                            Some(b'\n') => {
                                self.raw.push(b'\n');
                                rest = &rest[1..];
                            }
                            Some(_) => {}
                            None => self.skip_lf = true,
                        }
                    }
                    let start = self.line_start;
                    self.line_start = self.raw.len();
                    if start == line_end {
                        self.emit(&mut f);
                    } else {
                        self.field(start, line_end);
                    }
                    input = rest;
                }
            }
            if self.raw.len() > self.max_event {
                return Err(SseError::TooLarge {
                    max: self.max_event,
                });
            }
        }
        Ok(())
    }

    /// The end of the stream: the bytes of an unterminated block, if any (clients discard an
    /// unterminated event; the caller decides what to do with its bytes).
    pub fn finish(&mut self) -> Option<Block> {
        self.skip_lf = false;
        if self.raw.is_empty() {
            return None;
        }
        // Parse a trailing partial line too, so that the caller can see its fields.
        let end = self.raw.len();
        let start = self.line_start;
        if start < end {
            self.field(start, end);
        }
        let mut block = None;
        self.emit(&mut |b: &BlockRef<'_>| block = Some(b.to_block()));
        block
    }

    /// Hands the current block to `f` and starts the next one (keeping the buffers).
    fn emit(&mut self, f: &mut impl FnMut(&BlockRef<'_>)) {
        f(&BlockRef {
            raw: &self.raw,
            event: self.has_event.then_some(self.event.as_str()),
            data: self.has_data.then_some(self.data.as_slice()),
            id: self.id.as_deref(),
            retry: self.retry.as_deref(),
        });
        self.raw.clear();
        self.line_start = 0;
        self.event.clear();
        self.has_event = false;
        self.data.clear();
        self.has_data = false;
        self.id = None;
        self.retry = None;
    }

    fn field(&mut self, start: usize, end: usize) {
        let line = &self.raw[start..end];
        if line.first() == Some(&b':') {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &line[line.len()..]),
        };
        match name {
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
                self.has_event = true;
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned())
            }
            b"retry" => self.retry = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
}

/// Writes an event: `event:` (if any), `id:`, `retry:`, one `data:` line per line of `data`,
/// and the blank line.
pub fn write_event(
    event: Option<&str>,
    id: Option<&str>,
    retry: Option<&str>,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    if let Some(i) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(i.as_bytes());
        out.push(b'\n');
    }
    if let Some(r) = retry {
        out.extend_from_slice(b"retry: ");
        out.extend_from_slice(r.as_bytes());
        out.push(b'\n');
    }
    // Split on every line ending a parser recognises, so the data round-trips.
    let mut rest = data;
    loop {
        let cut = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.extend_from_slice(b"data: ");
        match cut {
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                out.push(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
            None => {
                out.extend_from_slice(rest);
                out.push(b'\n');
                break;
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<Block>, Option<Block>) {
        let mut p = Parser::new(1 << 20);
        let mut blocks = Vec::new();
        for c in chunks {
            p.feed(c, &mut blocks).unwrap();
        }
        let rest = p.finish();
        (blocks, rest)
    }

    #[test]
    fn lf_crlf_and_cr_line_endings() {
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!("event: ping{sep}data: {{}}{sep}{sep}data: a{sep}data: b{sep}{sep}");
            let (blocks, rest) = parse_all(&[text.as_bytes()]);
            assert_eq!(blocks.len(), 2, "{sep:?}");
            assert_eq!(blocks[0].name(), "ping");
            assert_eq!(blocks[0].data.as_deref(), Some(&b"{}"[..]));
            assert_eq!(blocks[1].name(), "message");
            assert_eq!(blocks[1].data.as_deref(), Some(&b"a\nb"[..]));
            let raw: Vec<u8> = blocks.iter().flat_map(|b| b.raw.clone()).collect();
            assert_eq!(raw, text.as_bytes());
            assert!(rest.is_none());
        }
    }

    #[test]
    fn a_lone_lf_chunk_after_a_cr_settles_the_crlf() {
        // Found by tests/stream_props.rs: "\r" | "\n" | "\n…" used to swallow the blank line,
        // merging two events into one (whose data then was not JSON, so the rewriter's text
        // streams never saw it).
        let text = b"data: a\r\n\ndata: b\n\n";
        let (whole, _) = parse_all(&[text]);
        assert_eq!(whole.len(), 2);
        for cuts in [
            &[&b"data: a\r"[..], b"\n", b"\ndata: b\n\n"][..],
            &[b"data: a\r", b"\n", b"", b"\n", b"data: b\n\n"],
            &[b"data: a\r", b"", b"\n", b"\n", b"data: b\n", b"\n"],
        ] {
            let (blocks, rest) = parse_all(cuts);
            assert_eq!(blocks, whole, "{cuts:?}");
            assert_eq!(rest, None);
        }
    }

    #[test]
    fn every_split_point_gives_the_same_blocks() {
        let text = "event: a\r\ndata: x\r\n\r\n: comment\r\n\r\nid: 7\rretry: 10\rdata:y\r\r";
        let (whole, _) = parse_all(&[text.as_bytes()]);
        for i in 0..=text.len() {
            let (blocks, rest) = parse_all(&[&text.as_bytes()[..i], &text.as_bytes()[i..]]);
            // A CR split from its LF may move the LF into the next block's raw bytes, but the
            // concatenation and the fields never change.
            let fields = |b: &Vec<Block>| {
                b.iter()
                    .map(|b| {
                        (
                            b.event.clone(),
                            b.data.clone(),
                            b.id.clone(),
                            b.retry.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(fields(&blocks), fields(&whole), "split at {i}");
            let mut raw: Vec<u8> = blocks.iter().flat_map(|b| b.raw.clone()).collect();
            if let Some(r) = rest {
                raw.extend(r.raw);
            }
            assert_eq!(raw, text.as_bytes(), "split at {i}");
        }
        assert_eq!(whole[2].id.as_deref(), Some("7"));
        assert_eq!(whole[2].retry.as_deref(), Some("10"));
        assert_eq!(whole[2].data.as_deref(), Some(&b"y"[..]));
        assert_eq!(whole[1].data, None);
    }

    #[test]
    fn split_inside_a_utf8_character() {
        let text = "data: é日\n\n".as_bytes();
        for i in 0..=text.len() {
            let (blocks, _) = parse_all(&[&text[..i], &text[i..]]);
            assert_eq!(blocks[0].data.as_deref(), Some("é日".as_bytes()));
        }
    }

    #[test]
    fn unterminated_block_is_returned_at_the_end() {
        let (blocks, rest) = parse_all(&[b"data: a\n\ndata: b"]);
        assert_eq!(blocks.len(), 1);
        let rest = rest.unwrap();
        assert_eq!(rest.raw, b"data: b");
        assert_eq!(rest.data.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn oversized_events_fail() {
        let mut p = Parser::new(16);
        let mut blocks = Vec::new();
        assert!(p.feed(b"data: 0123456789", &mut blocks).is_ok());
        assert_eq!(
            p.feed(b"abcdef", &mut blocks),
            Err(SseError::TooLarge { max: 16 })
        );
    }

    #[test]
    fn written_events_parse_back() {
        let mut out = Vec::new();
        write_event(Some("x"), Some("1"), None, b"a\nb\r\nc\rd", &mut out);
        let (blocks, _) = parse_all(&[&out]);
        assert_eq!(blocks[0].name(), "x");
        assert_eq!(blocks[0].id.as_deref(), Some("1"));
        assert_eq!(blocks[0].data.as_deref(), Some(&b"a\nb\nc\nd"[..]));
    }
}
