//! Chunked message bodies (RFC 9112 7.1), read within a bound: the one decoder of the server
//! (echo, collector) and of the client.
//!
//! A chunk size is whatever the peer claims, up to 2^64 - 1. It is parsed by httparse (overflow
//! checked, extensions skipped), then checked against what is left of the bound with checked
//! arithmetic before a byte is stored; the body grows with the bytes that arrive, not with the
//! claim. Lines are bounded too, trailers included.

use std::io::{self, BufRead, Read};

/// The longest chunk-size line read (size, extensions, CRLF).
const MAX_SIZE_LINE: u64 = 4096;
/// The most bytes of trailer fields read after the last chunk.
const MAX_TRAILER_BYTES: u64 = 64 << 10;

#[derive(Debug)]
pub(crate) enum ChunkedError {
    /// The chunks add up to more than the bound, or one claims more than is left of it.
    TooLarge,
    /// Not chunked framing; what is wrong.
    Malformed(&'static str),
    Io(io::Error),
}

impl From<io::Error> for ChunkedError {
    fn from(e: io::Error) -> Self {
        ChunkedError::Io(e)
    }
}

/// Reads a chunked body of at most `max_body` bytes, its trailer fields (ignored) and the empty
/// line that ends it.
pub(crate) fn read_chunked(r: &mut impl BufRead, max_body: usize) -> Result<Vec<u8>, ChunkedError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, MAX_SIZE_LINE)?;
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) => size,
            Ok(httparse::Status::Partial) | Err(_) => {
                return Err(ChunkedError::Malformed("malformed chunk size"))
            }
        };
        if size == 0 {
            break;
        }
        let fits = usize::try_from(size)
            .ok()
            .and_then(|s| body.len().checked_add(s))
            .is_some_and(|total| total <= max_body);
        if !fits {
            return Err(ChunkedError::TooLarge);
        }
        let got = r.by_ref().take(size).read_to_end(&mut body)?;
        if got as u64 != size {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(ChunkedError::Malformed("chunk not followed by CRLF"));
        }
    }
    let mut budget = MAX_TRAILER_BYTES;
    loop {
        let line = read_line(r, budget)?;
        budget -= line.len() as u64;
        if line == b"\r\n" || line == b"\n" {
            return Ok(body);
        }
    }
}

/// One line with its `\n`, of at most `limit` bytes.
fn read_line(r: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, ChunkedError> {
    let mut line = Vec::new();
    r.by_ref().take(limit).read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        Ok(line)
    } else if (line.len() as u64) < limit {
        Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
    } else {
        Err(ChunkedError::Malformed(
            "chunk-size or trailer line too long",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8], max: usize) -> Result<Vec<u8>, ChunkedError> {
        read_chunked(&mut io::BufReader::new(raw), max)
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let raw = b"3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nnext";
        let mut r = io::BufReader::new(&raw[..]);
        assert_eq!(read_chunked(&mut r, 13).unwrap(), b"abc0123456789");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "next", "reads up to the end of the body, no further");
    }

    #[test]
    fn claims_past_the_bound_are_refused_before_any_allocation() {
        for raw in [
            // The sum overflows usize after a 1-byte chunk.
            &b"1\r\na\r\nffffffffffffffff\r\n"[..],
            b"ffffffffffffffff\r\n",
            // One byte over the bound, in one chunk and in two.
            b"b\r\n",
            b"5\r\nabcde\r\n6\r\n",
        ] {
            assert!(
                matches!(read(raw, 10), Err(ChunkedError::TooLarge)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            read(b"5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n", 10)
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn bad_framing_is_malformed_and_truncation_an_io_error() {
        for raw in [
            &b"zz\r\n"[..],
            // 17 hex digits: more than 64 bits.
            b"1ffffffffffffffff\r\n",
            b"2\r\nabcd\r\n0\r\n\r\n",
            b"-1\r\n",
            &[b'1'; 5000],
        ] {
            assert!(
                matches!(read(raw, 1 << 20), Err(ChunkedError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        for raw in [&b""[..], b"5\r\nab", b"2\r\nab\r\n0\r\n"] {
            assert!(
                matches!(read(raw, 1 << 20), Err(ChunkedError::Io(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let endless_trailers = [&b"0\r\n"[..], &b"t: x\r\n".repeat(20_000)].concat();
        assert!(matches!(
            read(&endless_trailers, 1 << 20),
            Err(ChunkedError::Malformed(_))
        ));
    }
}
