//! A minimal HTTP/2 client (h2c, prior knowledge) for one GET whose header bytes are sent exactly
//! as given: HPACK literals without Huffman coding or indexing, so a test can send what curl's
//! command line cannot (a NUL byte, control bytes). Reads the answer until its status, a stream
//! reset or GOAWAY; decodes the status where HPACK gives it plainly (static table or literal
//! digits, Huffman-coded digits included).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// SETTINGS_MAX_FRAME_SIZE's initial value: no frame we send is larger.
const MAX_FRAME: usize = 16_384;

/// How the server answered stream 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H2Answer {
    /// Response HEADERS; the `:status` if it could be decoded.
    Status(Option<u16>),
    /// RST_STREAM with this error code (the codec refused the request).
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection closed with no answer.
    Closed,
}

/// `GET path` on `127.0.0.1:port` over h2c with `headers` (lower-case names, as HTTP/2 wants).
pub fn get(port: u16, path: &str, headers: &[(&[u8], &[u8])]) -> Result<H2Answer, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    literal_indexed_name(&mut block, 4, path.as_bytes()); // :path
    literal_indexed_name(&mut block, 1, b"localhost"); // :authority
    for (n, v) in headers {
        block.push(0x00); // literal without indexing, new name
        string(&mut block, n);
        string(&mut block, v);
    }
    let chunks: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() {
            END_HEADERS
        } else {
            0
        };
        if i == 0 {
            frame(&mut out, HEADERS, END_STREAM | last, 1, c);
        } else {
            frame(&mut out, CONTINUATION, last, 1, c);
        }
    }
    s.write_all(&out).map_err(|e| format!("write: {e}"))?;
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            return Ok(H2Answer::Closed);
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload)
            .map_err(|e| format!("read frame: {e}"))?;
        let code = || {
            payload
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                s.write_all(&ack).map_err(|e| format!("write: {e}"))?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                s.write_all(&pong).map_err(|e| format!("write: {e}"))?;
            }
            HEADERS if stream == 1 => return Ok(H2Answer::Status(status(&payload, flags))),
            RST_STREAM if stream == 1 => return Ok(H2Answer::Reset(code())),
            GOAWAY => {
                // GOAWAY's payload: last stream id, then the error code.
                let c = payload
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Ok(H2Answer::GoAway(c));
            }
            _ => {} // DATA, WINDOW_UPDATE, ...
        }
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with an `n`-bit prefix, OR-ed into `first`.
fn integer(out: &mut Vec<u8>, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0, 7, s.len()); // H bit 0: raw octets
    out.extend_from_slice(s);
}

fn literal_indexed_name(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    integer(out, 0x00, 4, index);
    string(out, value);
}

/// The `:status` from a response header block's first field (servers send it first).
fn status(payload: &[u8], flags: u8) -> Option<u16> {
    // PADDED (0x8) and PRIORITY (0x20) put bytes before the block.
    let mut b = payload;
    if flags & 0x8 != 0 {
        b = b.get(1..)?;
    }
    if flags & 0x20 != 0 {
        b = b.get(5..)?;
    }
    let first = *b.first()?;
    if first & 0x80 != 0 {
        return match first & 0x7f {
            8 => Some(200),
            9 => Some(204),
            10 => Some(206),
            11 => Some(304),
            12 => Some(400),
            13 => Some(404),
            14 => Some(500),
            _ => None,
        };
    }
    // Literal with the indexed name :status (index 8..=14), with or without indexing.
    let name = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if !(8..=14).contains(&name) {
        return None;
    }
    let len_byte = *b.get(1)?;
    let len = usize::from(len_byte & 0x7f);
    let value = b.get(2..2 + len)?;
    let text = if len_byte & 0x80 != 0 {
        huffman_digits(value)?
    } else {
        String::from_utf8(value.to_vec()).ok()?
    };
    text.parse().ok()
}

/// Decodes a Huffman-coded string of decimal digits (RFC 7541 Appendix B: `0`-`2` are the 5-bit
/// codes 0-2, `3`-`9` the 6-bit codes 0x19-0x1f); `None` for anything else.
fn huffman_digits(v: &[u8]) -> Option<String> {
    let bits: Vec<u8> = v
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i + 5 <= bits.len() {
        let five = bits[i..i + 5].iter().fold(0u8, |a, b| a << 1 | b);
        if five <= 2 {
            out.push(char::from(b'0' + five));
            i += 5;
            continue;
        }
        if i + 6 > bits.len() {
            break;
        }
        let six = bits[i..i + 6].iter().fold(0u8, |a, b| a << 1 | b);
        if (0x19..=0x1f).contains(&six) {
            out.push(char::from(b'0' + 3 + (six - 0x19)));
            i += 6;
        } else {
            break;
        }
    }
    // What is left must be EOS padding: all ones, under 8 bits.
    let rest = &bits[i..];
    (rest.len() < 8 && rest.iter().all(|b| *b == 1) && !out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers_and_statuses() {
        let mut v = Vec::new();
        integer(&mut v, 0, 5, 1337);
        assert_eq!(v, [31, 154, 10], "RFC 7541 C.1.2");
        assert_eq!(status(&[0x88], 0), Some(200));
        assert_eq!(status(&[0x48, 3, b'4', b'3', b'1'], 0), Some(431));
        // "302" Huffman-coded, RFC 7541 C.5.1: 0x64 0x02.
        assert_eq!(status(&[0x48, 0x82, 0x64, 0x02], 0), Some(302));
    }
}
