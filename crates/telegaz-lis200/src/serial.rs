//! Raw serial captures of an IEC 62056-21 mode C exchange with LIS-200
//! extensions, both directions in one byte stream.
//!
//! What is read (known from IEC 62056-21 and DOMAIN.md, shaped after the
//! sample capture):
//!
//! - `/?!` CR LF: the reader's sign-on; `/ELS6TC220` CR LF: the device's
//!   identification (model `TC220`); ACK `0 5 1` CR LF: option select.
//! - `SOH cmd [STX data] ETX BCC`: a command frame. `P0 (serial)` comes from
//!   the device and gives the serial number; `R3 n:V.0(…)` reads archive `n`;
//!   `R1 1:180.0(…)` / `R1 1:181.0(…)` read the serial number / device type,
//!   whose answers are used too; `B0` ends the session. Passwords (`P1`) and
//!   writes are skipped and never copied into warnings.
//! - `STX data EOT BCC`: a partial block of an answer, answered by ACK (or NAK:
//!   the device repeats the block); `STX data ETX BCC`: the last block.
//! - BCC is the XOR of the bytes after SOH/STX up to and including ETX/EOT.
//!
//! How blocks become rows:
//!
//! - The data of consecutive good blocks of one answer is joined (a row may
//!   straddle two blocks) and read line by line like clean text; the line
//!   numbers count lines of this reassembled payload.
//! - **A block whose BCC fails is dropped with a warning: its rows are not
//!   used.** A corrupted block cannot be trusted even for its time stamps or
//!   record numbers, so flagging its rows would still put wrong keys into the
//!   store. If the reader NAKs it and the device repeats it, the repeat takes
//!   its place and nothing is lost; otherwise the answer continues after a gap.
//! - A good block that the reader NAKs is dropped too: the device repeats it.
//! - A capture that ends inside a block (before its BCC) keeps that block's
//!   complete rows but flags them `Check::Failed("not verified …")`, and marks
//!   the file truncated; so does an answer that never reaches its ETX block.
//! - An error reply (`#0103`, `(#0103)`) in place of data becomes a warning.
//! - A capture recorded as 8 data bits with the parity bit kept (every byte of
//!   even parity, some with bit 7 set) is read with bit 7 cleared.

use std::borrow::Cow;

use telegaz_domain::{ParsedFile, Unrecognised};

use crate::fields::{self, Ident, Lines};
use crate::rows::{Collector, Line, LineEnd};

const SOH: u8 = 0x01;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const EOT: u8 = 0x04;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;

/// The bytes with bit 7 cleared when they look like 7E1 characters captured
/// with their parity bit; otherwise the bytes as they are.
pub(crate) fn strip_even_parity(b: &[u8]) -> Cow<'_, [u8]> {
    if b.iter().any(|&c| c >= 0x80) && b.iter().all(|c| c.count_ones() % 2 == 0) {
        Cow::Owned(b.iter().map(|c| c & 0x7F).collect())
    } else {
        Cow::Borrowed(b)
    }
}

/// Whether the content is framed and is read as a capture: a SOH or STX
/// followed somewhere by an ETX or EOT. (A clean text with one stray control
/// byte stays text, where only the line holding it is lost.)
pub(crate) fn is_capture(b: &[u8]) -> bool {
    b.iter()
        .position(|&c| c == SOH || c == STX)
        .and_then(|first| b.get(first..))
        .is_some_and(|rest| rest.iter().any(|&c| c == ETX || c == EOT))
}

/// Cheap recognition of a capture from its first bytes: it starts with a
/// sign-on, holds a command frame (SOH, letter, digit, STX/ETX), or holds a
/// data block with a row time stamp.
pub(crate) fn looks_like(head: &[u8]) -> bool {
    let first_line = head
        .trim_ascii_start()
        .split(|&c| c == b'\n')
        .next()
        .unwrap_or_default();
    if first_line.starts_with(b"/?") && fields::identification(first_line) == Ident::SignOn {
        return true;
    }
    let command = head.windows(4).any(|w| {
        matches!(w, [SOH, letter, digit, STX | ETX]
            if letter.is_ascii_uppercase() && digit.is_ascii_digit())
    });
    command || (head.windows(2).any(|w| w == [STX, b'(']) && fields::has_datetime_field(head))
}

/// Parses a capture (already parity-stripped when needed).
pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedFile, Unrecognised> {
    let mut out = Collector::new();
    let streams = Scanner::new(&mut out).run(bytes);
    let mut line_no = 0u32;
    for stream in &streams {
        for l in Lines::new(&stream.bytes) {
            line_no = line_no.saturating_add(1);
            let end = match (l.terminated, stream.end) {
                (true, _) | (false, End::Closed) => LineEnd::Newline,
                (false, End::Gap) => LineEnd::Gap,
                (false, End::CutOff | End::Open) => LineEnd::CutOff,
            };
            out.feed(Line {
                text: l.text,
                no: line_no,
                end,
                archive: stream.archive,
                verified: l.start + l.text.len() <= stream.verified,
            });
        }
    }
    out.finish("lis200-serial")
}

/// How the data of an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// More blocks are expected.
    Open,
    /// The last block (ETX) arrived.
    Closed,
    /// A block was lost (bad BCC, not repeated); data may resume after it.
    Gap,
    /// The capture or the answer stops before the last block.
    CutOff,
}

/// The joined data of the blocks of one answer.
#[derive(Debug)]
struct Stream {
    bytes: Vec<u8>,
    /// `bytes[..verified]` came in blocks whose BCC was checked.
    verified: usize,
    archive: Option<u32>,
    end: End,
}

/// What the reader asked for last.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    /// Nothing seen (yet): data is taken as archive data.
    None,
    /// `R3 n:V.…`: an archive read.
    Archive { archive: Option<u32> },
    /// `R1 address(…)`: a single value.
    Value { address: String },
    /// Another command (password, write, …), or one that could not be read.
    Other,
}

/// The last data block, for NAK handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    /// Appended to `stream` at `offset`.
    Good {
        stream: usize,
        offset: usize,
    },
    /// Dropped: its BCC failed. `nak`: the reader asked for a repeat.
    Bad {
        nak: bool,
        final_block: bool,
    },
    /// A repeat was asked for after a good block.
    Resend,
}

/// A frame starting at SOH or STX.
enum Frame<'a> {
    Done {
        body: &'a [u8],
        end: u8,
        sent: u8,
        computed: u8,
        next: usize,
    },
    /// Another frame starts at `next` before this one ended.
    Broken { next: usize },
    /// The capture ends inside the frame or before its BCC.
    CutOff { body: &'a [u8] },
}

/// Reads the frame starting at `start`. A command frame may hold one STX
/// (between command and data).
fn frame(b: &[u8], start: usize, command: bool) -> Frame<'_> {
    let body_start = start + 1;
    let mut bcc = 0u8;
    let mut seen_stx = false;
    let mut j = body_start;
    while let Some(&c) = b.get(j) {
        match c {
            ETX | EOT => {
                bcc ^= c;
                let body = b.get(body_start..j).unwrap_or_default();
                return match b.get(j + 1) {
                    Some(&sent) => Frame::Done {
                        body,
                        end: c,
                        sent,
                        computed: bcc,
                        next: j + 2,
                    },
                    None => Frame::CutOff { body },
                };
            }
            STX if command && !seen_stx => {
                seen_stx = true;
                bcc ^= c;
            }
            SOH | STX => return Frame::Broken { next: j },
            _ => bcc ^= c,
        }
        j += 1;
    }
    Frame::CutOff {
        body: b.get(body_start..).unwrap_or_default(),
    }
}

/// Length of an option-select message after its ACK (`051` CR LF), or 0.
fn option_select_len(after_ack: &[u8]) -> usize {
    match after_ack {
        [p, baud, mode, b'\r', b'\n', ..]
            if p.is_ascii_digit()
                && baud.is_ascii_alphanumeric()
                && mode.is_ascii_alphanumeric() =>
        {
            5
        }
        _ => 0,
    }
}

/// The archive number of an `R3` request (`3:V.0(…)` → 3).
fn archive_number(data: &[u8]) -> Option<u32> {
    let colon = data.iter().position(|&c| c == b':')?;
    let (digits, rest) = data.split_at(colon);
    if !rest.starts_with(b":V") || digits.is_empty() || digits.len() > 3 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The address of an `R1` request (`1:180.0(1)` → `1:180`).
fn value_address(data: &[u8]) -> String {
    let end = data.iter().position(|&c| c == b'(').unwrap_or(data.len());
    let text = String::from_utf8_lossy(data.get(..end.min(32)).unwrap_or_default()).into_owned();
    crate::layout::address_key(&text).to_owned()
}

/// The text inside the first pair of parentheses, if short printable ASCII.
fn first_value(data: &[u8]) -> Option<String> {
    let t = data.trim_ascii();
    let open = t.iter().position(|&c| c == b'(')?;
    let inner = t.get(open + 1..)?;
    let close = inner.iter().position(|&c| c == b')')?;
    let v = inner.get(..close)?.trim_ascii();
    (!v.is_empty() && v.len() <= 32 && v.iter().all(|c| c.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(v).into_owned())
}

/// A command for messages: printable, short.
fn describe(cmd: &[u8], data: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(cmd)
        .chars()
        .chain([' '])
        .chain(String::from_utf8_lossy(data).chars())
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    text.trim().to_owned()
}

struct Scanner<'c> {
    out: &'c mut Collector,
    streams: Vec<Stream>,
    open: Option<usize>,
    request: Request,
    request_text: String,
    last: Last,
    stray: usize,
}

impl<'c> Scanner<'c> {
    fn new(out: &'c mut Collector) -> Self {
        Self {
            out,
            streams: Vec::new(),
            open: None,
            request: Request::None,
            request_text: "the reader's request".into(),
            last: Last::Nothing,
            stray: 0,
        }
    }

    fn run(mut self, b: &[u8]) -> Vec<Stream> {
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            i = match c {
                SOH => self.command(b, i),
                STX => self.data(b, i),
                ACK => i + 1 + option_select_len(b.get(i + 1..).unwrap_or_default()),
                NAK => {
                    self.nak();
                    i + 1
                }
                b'/' => self.slash_line(b, i),
                b'\r' | b'\n' | b' ' | b'\t' => i + 1,
                _ => {
                    self.stray += 1;
                    i + 1
                }
            };
        }
        self.end_answer();
        if self.stray > 0 {
            self.out.warnings.push(format!(
                "{} bytes outside any frame were ignored",
                self.stray
            ));
        }
        self.streams
    }

    /// `/?!` or `/ELS6TC220` up to the line feed.
    fn slash_line(&mut self, b: &[u8], at: usize) -> usize {
        let rest = b.get(at..).unwrap_or_default();
        let window = rest.get(..rest.len().min(128)).unwrap_or(rest);
        let Some(k) = window.iter().position(|&c| c == b'\n') else {
            self.stray += 1;
            return at + 1;
        };
        match fields::identification(window.get(..k).unwrap_or_default()) {
            Ident::SignOn => {
                self.end_answer();
                self.request = Request::None;
                self.last = Last::Nothing;
            }
            Ident::Device { model } => self.out.set_model(model, &format!("byte {at}")),
            Ident::Other => {
                self.stray += 1;
                return at + 1;
            }
        }
        at + k + 1
    }

    fn command(&mut self, b: &[u8], at: usize) -> usize {
        match frame(b, at, true) {
            Frame::Done {
                body,
                sent,
                computed,
                next,
                ..
            } => {
                if sent == computed {
                    self.on_command(body);
                } else {
                    self.out.warnings.push(format!(
                        "byte {at}: command frame fails its block check (BCC sent 0x{sent:02X}, \
                         computed 0x{computed:02X}): ignored"
                    ));
                    self.new_request(Request::Other, "an unreadable command".into());
                }
                next
            }
            Frame::Broken { next } => {
                self.out.warnings.push(format!(
                    "byte {at}: command frame interrupted by another frame: ignored"
                ));
                self.new_request(Request::Other, "an unreadable command".into());
                next
            }
            // No data is lost: as if the capture ended before the command.
            Frame::CutOff { .. } => {
                self.out.warnings.push(format!(
                    "byte {at}: the capture ends inside a command frame"
                ));
                b.len()
            }
        }
    }

    fn on_command(&mut self, body: &[u8]) {
        let (cmd, data) = match body.iter().position(|&c| c == STX) {
            Some(k) => (
                body.get(..k).unwrap_or_default(),
                body.get(k + 1..).unwrap_or_default(),
            ),
            None => (body, &[][..]),
        };
        match cmd {
            // The device's answer to the sign-on: its serial number.
            b"P0" => {
                if let Some(serial) = first_value(data) {
                    self.out.set_serial(serial);
                }
            }
            b"B0" => self.new_request(Request::None, "the end of the session".into()),
            b"R3" => self.new_request(
                Request::Archive {
                    archive: archive_number(data),
                },
                describe(cmd, data),
            ),
            b"R1" | b"R2" => self.new_request(
                Request::Value {
                    address: value_address(data),
                },
                describe(cmd, data),
            ),
            // Passwords, writes and the like: nothing to keep (and never echoed).
            _ => self.new_request(Request::Other, "a command".into()),
        }
    }

    fn new_request(&mut self, request: Request, text: String) {
        self.end_answer();
        self.request = request;
        self.request_text = text;
        self.last = Last::Nothing;
    }

    /// Ends the open answer, if any, before its last block.
    fn end_answer(&mut self) {
        if self.open.is_none() {
            return;
        }
        let end = match self.last {
            Last::Bad {
                final_block: true, ..
            } => End::Gap,
            _ => {
                self.out.truncated = true;
                self.out.warnings.push(format!(
                    "the answer to {} stops before its last block: the readout is incomplete",
                    self.request_text
                ));
                End::CutOff
            }
        };
        self.close(end);
    }

    fn close(&mut self, end: End) {
        if let Some(s) = self.open.take().and_then(|s| self.streams.get_mut(s)) {
            s.end = end;
        }
    }

    fn open_stream(&mut self) -> usize {
        if let Some(s) = self.open {
            return s;
        }
        let archive = match self.request {
            Request::Archive { archive } => archive,
            _ => None,
        };
        self.streams.push(Stream {
            bytes: Vec::new(),
            verified: 0,
            archive,
            end: End::Open,
        });
        let s = self.streams.len() - 1;
        self.open = Some(s);
        s
    }

    fn data(&mut self, b: &[u8], at: usize) -> usize {
        match frame(b, at, false) {
            Frame::Done {
                body,
                end,
                sent,
                computed,
                next,
            } => {
                if sent == computed {
                    self.good_block(body, end == ETX, at);
                } else {
                    let rows = body.iter().filter(|&&c| c == b'\n').count().max(1);
                    self.out.warnings.push(format!(
                        "byte {at}: data block fails its block check (BCC sent 0x{sent:02X}, \
                         computed 0x{computed:02X}): its rows (about {rows}) are not used"
                    ));
                    self.last = Last::Bad {
                        nak: false,
                        final_block: end == ETX,
                    };
                }
                next
            }
            Frame::Broken { next } => {
                self.out.warnings.push(format!(
                    "byte {at}: data block interrupted by another frame: its rows are not used"
                ));
                self.last = Last::Bad {
                    nak: false,
                    final_block: false,
                };
                next
            }
            Frame::CutOff { body } => {
                self.out.truncated = true;
                self.out.warnings.push(format!(
                    "byte {at}: the capture ends inside a data block, before its block check: \
                     its complete rows are kept but flagged as not verified"
                ));
                if self.answer_consumed(body, at) {
                    return b.len();
                }
                self.append(body, false);
                self.close(End::CutOff);
                b.len()
            }
        }
    }

    /// Handles an error reply or a single-value answer; true when `body` was one.
    fn answer_consumed(&mut self, body: &[u8], at: usize) -> bool {
        if let Some(code) = fields::error_reply(body) {
            self.out.warnings.push(format!(
                "byte {at}: the device replied #{code:04} ({}) to {}",
                fields::error_meaning(code),
                self.request_text
            ));
            let end = if self.open.is_some() {
                End::Gap
            } else {
                End::Closed
            };
            self.close(end);
            self.request = Request::None;
            self.last = Last::Nothing;
            return true;
        }
        if let Request::Value { address } = &self.request {
            if let Some(value) = first_value(body) {
                match address.as_str() {
                    "1:180" => self.out.set_serial(value),
                    "1:181" => self.out.set_model(value, &format!("byte {at}")),
                    _ => {}
                }
            }
            self.last = Last::Nothing;
            return true;
        }
        false
    }

    fn good_block(&mut self, body: &[u8], final_block: bool, at: usize) {
        if self.answer_consumed(body, at) {
            if final_block && matches!(self.request, Request::Value { .. }) {
                self.request = Request::None;
            }
            return;
        }
        self.append(body, true);
        if final_block {
            self.close(End::Closed);
            self.request = Request::None;
        }
    }

    /// Appends block data to the open answer (a new one after a lost block).
    fn append(&mut self, body: &[u8], verified: bool) {
        if matches!(self.last, Last::Bad { nak: false, .. }) && self.open.is_some() {
            self.close(End::Gap);
        }
        let s = self.open_stream();
        if let Some(stream) = self.streams.get_mut(s) {
            let offset = stream.bytes.len();
            stream.bytes.extend_from_slice(body);
            if verified {
                stream.verified = stream.bytes.len();
            }
            self.last = Last::Good { stream: s, offset };
        }
    }

    /// The reader rejected the last block: the device will repeat it.
    fn nak(&mut self) {
        match self.last {
            Last::Good { stream, offset } => {
                if let Some(s) = self.streams.get_mut(stream) {
                    s.bytes.truncate(offset);
                    s.verified = s.verified.min(offset);
                    s.end = End::Open;
                    self.open = Some(stream);
                }
                self.last = Last::Resend;
            }
            Last::Bad { final_block, .. } => {
                self.last = Last::Bad {
                    nak: true,
                    final_block,
                };
            }
            Last::Nothing | Last::Resend => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcc(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0, |a, b| a ^ b)
    }

    /// `STX data end BCC`.
    fn block(data: &str, end: u8) -> Vec<u8> {
        let mut v = vec![STX];
        v.extend_from_slice(data.as_bytes());
        v.push(end);
        v.push(bcc(&v[1..]));
        v
    }

    #[test]
    fn frames_and_bcc() {
        let b = block("(1)", ETX);
        match frame(&b, 0, false) {
            Frame::Done {
                body,
                sent,
                computed,
                next,
                ..
            } => {
                assert_eq!(body, b"(1)");
                assert_eq!(sent, computed);
                assert_eq!(next, b.len());
            }
            _ => panic!("not a frame"),
        }
        assert!(matches!(
            frame(&b[..b.len() - 1], 0, false),
            Frame::CutOff { .. }
        ));
        assert!(matches!(
            frame(b"\x02(1)\x02(2)\x03x", 0, false),
            Frame::Broken { next: 4 }
        ));
        // A command frame may hold one STX, and the BCC includes it.
        let mut cmd = b"\x01P0\x02(1234567)\x03".to_vec();
        cmd.push(bcc(&cmd[1..]));
        assert!(
            matches!(frame(&cmd, 0, true), Frame::Done { sent, computed, .. } if sent == computed)
        );
    }

    #[test]
    fn requests() {
        assert_eq!(archive_number(b"3:V.0(2;a;b;10)"), Some(3));
        assert_eq!(archive_number(b"4:V.0(3;;;)"), Some(4));
        assert_eq!(archive_number(b"1:180.0(1)"), None);
        assert_eq!(value_address(b"1:180.0(1)"), "1:180");
        assert_eq!(first_value(b"(1234567)"), Some("1234567".into()));
        assert_eq!(first_value(b"()"), None);
        assert_eq!(option_select_len(b"051\r\n\x01"), 5);
        assert_eq!(option_select_len(b"\x02("), 0);
    }

    #[test]
    fn parity_is_stripped_only_when_consistent() {
        let seven_e_one: Vec<u8> = b"/?!\r\n"
            .iter()
            .map(|&c| if c.count_ones() % 2 == 1 { c | 0x80 } else { c })
            .collect();
        assert!(seven_e_one.iter().any(|&c| c >= 0x80));
        assert_eq!(&*strip_even_parity(&seven_e_one), b"/?!\r\n");
        assert_eq!(&*strip_even_parity(b"abc"), b"abc");
        assert_eq!(&*strip_even_parity(&[0x80, 0x81]), &[0x80, 0x81]);
    }

    #[test]
    fn framing_decides_capture() {
        assert!(is_capture(b"\x02(1)\x03x"));
        assert!(is_capture(b"\x01B0\x03q"));
        assert!(!is_capture(b"(1)\x02(2)"));
        assert!(!is_capture(b"\x03(1)\x02(2)"));
    }

    #[test]
    fn looks_like_captures() {
        assert!(looks_like(b"/?!\r\n/ELS6TC220\r\n"));
        assert!(looks_like(b"xx\x01R3\x023:V.0"));
        assert!(looks_like(b"\x02(1)(2026-01-14,11:00:00)"));
        assert!(!looks_like(b"\x02(1)"));
        assert!(!looks_like(b"/?"));
    }
}
