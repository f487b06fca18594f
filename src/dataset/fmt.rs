//! Hand-written JSON output in exactly Python's `json.dumps` byte layout.
//!
//! A dataset is mostly decimal token ids, so the hot path copies each id's pre-rendered digits
//! (and separator) from a table with one 8-byte store, into a large chunk that goes to the writer
//! in one call.

use std::io::Write;

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v` in decimal at the start of `dst` (which must hold 20 bytes) and returns the length.
pub fn write_u64(dst: &mut [u8], mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    let len = tmp.len() - i;
    dst[..len].copy_from_slice(&tmp[i..]);
    len
}

/// Like [`write_u64`] for a signed value (`dst` must hold 21 bytes).
pub fn write_i64(dst: &mut [u8], v: i64) -> usize {
    if v < 0 {
        dst[0] = b'-';
        1 + write_u64(&mut dst[1..], v.unsigned_abs())
    } else {
        write_u64(dst, v as u64)
    }
}

/// Pre-rendered `"<id><sep>"` for every id below a bound: up to 7 bytes of text in the low bytes
/// of a `u64`, its length in the top byte, so an id costs one table load and one 8-byte store.
#[derive(Debug, Clone)]
pub struct DigitTable {
    packed: Vec<u64>,
    sep: &'static [u8],
}

impl DigitTable {
    /// Covers ids below `n` whose digits and separator fit in 7 bytes; larger ids fall back to
    /// [`write_u64`].
    pub fn new(n: u32, sep: &'static [u8]) -> Self {
        let max_digits = 7usize.saturating_sub(sep.len()) as u32;
        let limit = if max_digits == 0 {
            0
        } else {
            10u64.pow(max_digits).min(n as u64)
        };
        let mut packed = Vec::with_capacity(limit as usize);
        let mut tmp = [0u8; 28];
        for id in 0..limit {
            let digits = write_u64(&mut tmp, id);
            tmp[digits..digits + sep.len()].copy_from_slice(sep);
            let len = digits + sep.len();
            let mut bytes = [0u8; 8];
            bytes[..len].copy_from_slice(&tmp[..len]);
            bytes[7] = len as u8;
            packed.push(u64::from_le_bytes(bytes));
        }
        DigitTable { packed, sep }
    }

    /// Writes `ids` as a JSON array with the table's separator, `[` and `]` included.
    /// `dst` must hold [`array_bound`](Self::array_bound) bytes.
    #[inline]
    pub fn write_array(&self, dst: &mut [u8], ids: &[u32]) -> usize {
        dst[0] = b'[';
        let mut p = 1;
        let sep = self.sep;
        for &id in ids {
            if let Some(&packed) = self.packed.get(id as usize) {
                // The length byte lands past the text and is overwritten by the next id.
                dst[p..p + 8].copy_from_slice(&packed.to_le_bytes());
                p += (packed >> 56) as usize;
            } else {
                p += write_u64(&mut dst[p..], id as u64);
                dst[p..p + sep.len()].copy_from_slice(sep);
                p += sep.len();
            }
        }
        if !ids.is_empty() {
            p -= sep.len();
        }
        dst[p] = b']';
        p + 1
    }

    /// The most bytes [`write_array`](Self::write_array) can need for `n` ids (plus 8 bytes of
    /// slack for the last unaligned store).
    pub fn array_bound(n: usize) -> usize {
        n * 12 + 2 + 8
    }
}

/// Appends `s` as a JSON string the way Python's `json.dumps` does: `ensure_ascii=False` keeps
/// non-ASCII text as UTF-8, `ensure_ascii=True` writes `\uXXXX` (surrogate pairs above the BMP).
pub fn push_json_str(out: &mut Vec<u8>, s: &str, ensure_ascii: bool) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => push_u_escape(out, c as u32 as u16),
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for &unit in c.encode_utf16(&mut units).iter() {
                    push_u_escape(out, unit);
                }
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn push_u_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// A large output chunk handed to the writer whole; keeps a running byte count.
pub struct ChunkWriter<'w, W: Write + ?Sized> {
    out: &'w mut W,
    buf: Vec<u8>,
    pos: usize,
    written: u64,
}

const CHUNK: usize = 1 << 20;

impl<'w, W: Write + ?Sized> ChunkWriter<'w, W> {
    pub fn new(out: &'w mut W) -> Self {
        ChunkWriter {
            out,
            buf: vec![0; CHUNK],
            pos: 0,
            written: 0,
        }
    }

    /// Room for `n` more bytes, as a slice to write into; commit with [`advance`](Self::advance).
    pub fn space(&mut self, n: usize) -> std::io::Result<&mut [u8]> {
        if self.pos + n > self.buf.len() {
            self.flush_chunk()?;
            if n > self.buf.len() {
                self.buf.resize(n, 0);
            }
        }
        Ok(&mut self.buf[self.pos..])
    }

    pub fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    pub fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let dst = self.space(bytes.len())?;
        dst[..bytes.len()].copy_from_slice(bytes);
        self.advance(bytes.len());
        Ok(())
    }

    pub fn put_u64(&mut self, v: u64) -> std::io::Result<()> {
        let dst = self.space(20)?;
        let n = write_u64(dst, v);
        self.advance(n);
        Ok(())
    }

    pub fn put_i64(&mut self, v: i64) -> std::io::Result<()> {
        let dst = self.space(21)?;
        let n = write_i64(dst, v);
        self.advance(n);
        Ok(())
    }

    pub fn put_array(&mut self, table: &DigitTable, ids: &[u32]) -> std::io::Result<()> {
        let dst = self.space(DigitTable::array_bound(ids.len()))?;
        let n = table.write_array(dst, ids);
        self.advance(n);
        Ok(())
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.pos > 0 {
            self.out.write_all(&self.buf[..self.pos])?;
            self.written += self.pos as u64;
            self.pos = 0;
        }
        Ok(())
    }

    /// Writes what is left and flushes the underlying writer; returns the total byte count.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.flush_chunk()?;
        self.out.flush()?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_render_like_python() {
        let mut buf = [0u8; 24];
        for v in [0u64, 7, 10, 99, 100, 12345, 1_000_000, u64::MAX] {
            let n = write_u64(&mut buf, v);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), v.to_string());
        }
        for v in [i64::MIN, -1, 0, 42] {
            let n = write_i64(&mut buf, v);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), v.to_string());
        }
    }

    #[test]
    fn arrays_render_like_python() {
        let compact = DigitTable::new(2_000_000, b",");
        let spaced = DigitTable::new(2_000_000, b", ");
        let ids = [
            0u32,
            5,
            999,
            1000,
            1001,
            10_010,
            100_999,
            999_999,
            1_000_000,
            4_000_000_000,
        ];
        let mut buf = vec![0u8; DigitTable::array_bound(ids.len())];
        let n = compact.write_array(&mut buf, &ids);
        assert_eq!(
            &buf[..n],
            b"[0,5,999,1000,1001,10010,100999,999999,1000000,4000000000]"
        );
        let n = spaced.write_array(&mut buf, &ids);
        assert_eq!(
            &buf[..n],
            b"[0, 5, 999, 1000, 1001, 10010, 100999, 999999, 1000000, 4000000000]"
        );
        for id in (0..1_200_000u32).step_by(7) {
            let n = compact.write_array(&mut buf, &[id, id]);
            assert_eq!(
                std::str::from_utf8(&buf[..n]).unwrap(),
                format!("[{id},{id}]")
            );
        }
        let n = spaced.write_array(&mut buf, &[]);
        assert_eq!(&buf[..n], b"[]");
    }

    #[test]
    fn strings_escape_like_python() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a\"b\\c\n\u{1}\u{7f}é😀", false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}é😀\""
        );
        let mut out = Vec::new();
        push_json_str(&mut out, "é😀", true);
        assert_eq!(String::from_utf8(out).unwrap(), "\"\\u00e9\\ud83d\\ude00\"");
    }
}
