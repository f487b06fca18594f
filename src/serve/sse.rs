//! Server-sent-event framing over a byte stream (WHATWG `text/event-stream`), written for the
//! load generator's hot path.
//!
//! Why not `eventsource-stream` (the usual crate): it re-copies the rest of its buffer after
//! every line, so a read that holds many events (servers coalesce tokens when decoding outruns the network:
//! `transformers serve` drains its queue into one write, and a loaded client reads several
//! events at once) costs time quadratic in the read's size; an invalid UTF-8 byte also holds
//! back every later event until the connection closes, which would shift their timestamps. This
//! framer is linear, works on bytes (event data goes to `serde_json` without a `String` copy)
//! and caps the size of one event. Measured (docs/serve-bench.md, "Client capacity"): 8x the
//! crate's events/s at one event per read, 200x at 3000 events per read.

use memchr::memchr2;

/// One dispatched event: its `data` lines joined by `\n`, and its `event` type if given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event is larger than {limit} bytes (a malformed or runaway stream)")]
    TooLarge { limit: usize },
}

/// Incremental parser: feed it bytes as they arrive, take events out as they complete.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Start of the unparsed part of `buf`.
    pos: usize,
    started: bool,
    /// A `\r` ended the last line: a `\n` right after it belongs to that line ending.
    after_cr: bool,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    max_event_bytes: usize,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            pos: 0,
            started: false,
            after_cr: false,
            data: Vec::new(),
            has_data: false,
            event: None,
            max_event_bytes,
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            // Compact only when the parsed prefix dominates, so each byte moves O(1) times.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes fed so far hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        loop {
            if !self.started {
                if self.buf.len() - self.pos < 3
                    && b"\xEF\xBB\xBF".starts_with(&self.buf[self.pos..])
                {
                    return Ok(None); // a byte-order mark may still be arriving
                }
                if self.buf[self.pos..].starts_with(b"\xEF\xBB\xBF") {
                    self.pos += 3;
                }
                self.started = true;
            }
            if self.after_cr && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.after_cr = false;
            }
            let rest = &self.buf[self.pos..];
            let Some(end) = memchr2(b'\n', b'\r', rest) else {
                if rest.len() + self.data.len() > self.max_event_bytes {
                    return Err(SseError::TooLarge {
                        limit: self.max_event_bytes,
                    });
                }
                return Ok(None);
            };
            let line_start = self.pos;
            self.after_cr = rest[end] == b'\r';
            self.pos += end + 1;
            let line = line_start..line_start + end;
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Ok(Some(SseEvent {
                        event: self.event.take(),
                        data: std::mem::take(&mut self.data),
                    }));
                }
                self.event = None;
                continue;
            }
            self.field(line)?;
        }
    }

    fn field(&mut self, range: std::ops::Range<usize>) -> Result<(), SseError> {
        let line = &self.buf[range];
        if line[0] == b':' {
            return Ok(()); // a comment (keep-alive pings)
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if self.data.len() > self.max_event_bytes {
                    return Err(SseError::TooLarge {
                        limit: self.max_event_bytes,
                    });
                }
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry and unknown fields do not matter to a benchmark
        }
        Ok(())
    }

    /// What is left when the connection closes: an event whose blank line never came. The
    /// specification drops it; servers that close right after their last `data:` line exist, so
    /// the caller decides.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = &self.buf[self.pos..];
        if !rest.is_empty() {
            let end = rest.len();
            let range = self.pos..self.pos + end;
            self.pos += end;
            if self.field(range).is_err() {
                return None;
            }
        }
        if self.has_data {
            self.has_data = false;
            Some(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c);
            while let Some(e) = p.next_event().unwrap() {
                out.push(String::from_utf8(e.data).unwrap());
            }
        }
        if let Some(e) = p.finish() {
            out.push(format!(
                "(unterminated) {}",
                String::from_utf8(e.data).unwrap()
            ));
        }
        out
    }

    #[test]
    fn frames_on_blank_lines_across_reads() {
        assert_eq!(
            all(&[b"data: a\n\ndata: b\n", b"\ndata:c\n\n"]),
            ["a", "b", "c"]
        );
        assert_eq!(all(&[b"data: a\r\n\r\ndata: b\r\r"]), ["a", "b"]);
        // A \r\n split between two reads is one line ending, not two.
        assert_eq!(all(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]), ["a", "b"]);
    }

    #[test]
    fn multi_line_data_comments_and_bom() {
        assert_eq!(
            all(&[b"\xEF\xBB", b"\xBF: ping\ndata: x\ndata: y\nid: 3\n\n"]),
            ["x\ny"]
        );
        assert_eq!(all(&[b"event: error\n\n"]), Vec::<String>::new());
    }

    #[test]
    fn unterminated_last_event_is_reported_by_finish() {
        assert_eq!(all(&[b"data: a\n\ndata: b"]), ["a", "(unterminated) b"]);
    }

    #[test]
    fn one_event_too_large_is_an_error() {
        let mut p = SseParser::new(8);
        p.feed(b"data: 0123456789\n\n");
        assert!(p.next_event().is_err());
        let mut p = SseParser::new(8);
        p.feed(b"data: 0123456789");
        assert!(p.next_event().is_err());
    }

    #[test]
    fn event_type_is_kept() {
        let mut p = SseParser::new(64);
        p.feed(b"event: error\ndata: {}\n\n");
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(e.event.as_deref(), Some("error"));
    }
}
