//! Streaming reader for a manufacturer's "unordered list of device serial
//! numbers" attached to an ÖKC certificate order.
//!
//! The list is untrusted input. [`SerialListReader`] reads it from any
//! [`BufRead`] line by line with flat memory: at most [`MAX_LINE_BYTES`] of a
//! line plus an 8 KiB look-ahead are ever held, whatever the input's size.
//! It yields each valid serial ([`ListedSerial`]) or a problem
//! ([`ListProblem`]) with a 1-based physical line number and a short excerpt
//! that is safe to print on an operator's terminal. Duplicates are left to the
//! caller.
//!
//! Accepted layouts (the first non-blank, non-comment line decides):
//! - one serial per line;
//! - a CSV/TSV whose header row (a line containing `,`, `;` or a tab) names a
//!   serial column (fields read as RFC 4180 does: quoted fields may hold the
//!   separator and `""`, one row per line): `serial`, `serial_number`, `serial_no`, `seri_no`,
//!   `sicil_no` or `mali_sicil_no` (case-insensitive, spaces and hyphens read
//!   as `_`, so `Seri No` and `SERİ-NO` match).
//!
//! Line ends may be LF, CRLF or a lone CR; a leading UTF-8 BOM is skipped;
//! blank lines and `#` comment lines are ignored anywhere.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, Cursor, Read};
use std::iter::FusedIterator;

use crate::ids::{DeviceSerial, IdError, PrefixTable};

/// The longest line accepted, in bytes, not counting its line end. Longer
/// lines are reported as [`ProblemKind::TooLong`] and skipped without being
/// held in memory.
pub const MAX_LINE_BYTES: usize = 256;

/// How much of the start of the input is checked for NUL bytes before any
/// line is read (see [`ProblemKind::BinaryFile`]).
const BINARY_PROBE_BYTES: usize = 8 * 1024;

/// The longest excerpt, in characters, including the `…` of a truncated one.
const EXCERPT_CHARS: usize = 40;

/// How many column names a [`ProblemKind::NoSerialColumn`] message lists.
const COLUMNS_SHOWN: usize = 10;

/// Accepted names of the serial column, after [`normalize_header`].
const SERIAL_COLUMN_NAMES: [&str; 6] = [
    "serial",
    "serial_number",
    "serial_no",
    "seri_no",
    "sicil_no",
    "mali_sicil_no",
];

/// Field separators recognised in a header row, in order of preference.
const DELIMITERS: [char; 3] = ['\t', ';', ','];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A valid device serial read from the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSerial {
    /// The 1-based physical line it was read from.
    pub line: usize,
    /// The serial, validated against the manufacturer's prefix table.
    pub serial: DeviceSerial,
}

/// Something wrong with one line of the list, or with the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListProblem {
    /// The 1-based physical line, or 0 for a file-level problem.
    pub line: usize,
    /// What is wrong.
    pub kind: ProblemKind,
    /// At most 40 characters of the offending text, with control and other
    /// non-printable characters escaped (`\u{1b}`, `\t`, `\xff` for a byte that
    /// is not UTF-8) and `…` when cut short: safe to print on a terminal.
    /// Empty when there is no offending text (e.g. [`ProblemKind::EmptyList`]).
    pub excerpt: String,
}

impl ListProblem {
    /// True for a problem with the whole file, after which the reader stops:
    /// [`ProblemKind::NoSerialColumn`], [`ProblemKind::BinaryFile`],
    /// [`ProblemKind::EmptyList`] and [`ProblemKind::Io`].
    pub fn is_file_level(&self) -> bool {
        self.kind.is_file_level()
    }

    fn at_line(line: usize, kind: ProblemKind, text: &[u8]) -> Self {
        Self {
            line,
            kind,
            excerpt: excerpt(text),
        }
    }

    fn file(kind: ProblemKind, text: &[u8]) -> Self {
        Self {
            line: 0,
            kind,
            excerpt: excerpt(text),
        }
    }
}

/// One line: `line 7: "FU-0002254" must be 2-3 capital letters followed by
/// 7-8 digits (e.g. FU00022547)`; a file-level problem reads `file: ...`.
/// Only the escaped excerpt of the input is shown, never the raw text.
impl fmt::Display for ListProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_file_level() {
            write!(f, "file: {}", self.kind)
        } else {
            write!(f, "line {}: \"{}\" {}", self.line, self.excerpt, self.kind)
        }
    }
}

impl std::error::Error for ListProblem {}

/// What is wrong with a line or with the list. Its message completes a
/// sentence whose subject is the excerpt (line-level) or the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The serial field is not a valid device serial, or its prefix is not
    /// approved for the manufacturer. The [`IdError`] holds the whole value.
    #[error("{}", bad_serial_reason(.0))]
    BadSerial(IdError),
    /// The line is longer than [`MAX_LINE_BYTES`]; it was skipped.
    #[error("is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// The line is not valid UTF-8.
    #[error("is not valid UTF-8 text (save the list as UTF-8)")]
    NotUtf8,
    /// The line contains a NUL byte.
    #[error("contains a NUL byte (binary data)")]
    Binary,
    /// A data row of a CSV/TSV list has a different number of fields than
    /// its header row.
    #[error("has {found} fields, but the header row has {expected}")]
    WrongFieldCount {
        /// The number of fields in the header row.
        expected: usize,
        /// The number of fields in this row.
        found: usize,
    },
    /// A quoted field of a CSV/TSV row does not close on its line.
    #[error("has a quoted field that does not close on its line")]
    UnclosedQuote,
    /// A quoted field of a CSV/TSV row is followed by text before the next
    /// delimiter, as in `"FU00022547"x`.
    #[error("has text between a closing quote and the next separator")]
    TextAfterQuote,
    /// File-level: the header row names no serial column. The reader stops.
    #[error(
        "the header row has no serial column (columns: {}); expected one of {}",
        list_columns(columns),
        SERIAL_COLUMN_NAMES.join(", ")
    )]
    NoSerialColumn {
        /// The header's column names, each escaped and shortened like
        /// [`ListProblem::excerpt`].
        columns: Vec<String>,
    },
    /// File-level: the first 8 KiB of input contain a NUL byte. The reader
    /// stops without reading any line.
    #[error(
        "the file is not a text list: its first 8 KiB contain a NUL byte \
         (binary data, or UTF-16 text; save the list as UTF-8 text)"
    )]
    BinaryFile,
    /// File-level: the list has no data rows at all (only blank lines,
    /// comments or a header row). Rows with problems count as data rows.
    #[error("the list contains no device serials")]
    EmptyList,
    /// File-level: reading the input failed. The reader stops.
    #[error("read error: {0}")]
    Io(String),
}

impl ProblemKind {
    fn is_file_level(&self) -> bool {
        matches!(
            self,
            ProblemKind::NoSerialColumn { .. }
                | ProblemKind::BinaryFile
                | ProblemKind::EmptyList
                | ProblemKind::Io(_)
        )
    }
}

/// The reason a serial was refused, without repeating the (untrusted) value,
/// which the excerpt already shows.
fn bad_serial_reason(error: &IdError) -> String {
    match error {
        IdError::DeviceSerialFormat { .. } => {
            "must be 2-3 capital letters followed by 7-8 digits (e.g. FU00022547)".to_owned()
        }
        // `prefix` is 2-3 ASCII capitals (checked by the parser), `allowed`
        // comes from the trusted prefix table.
        IdError::DeviceSerialPrefix {
            prefix, allowed, ..
        } => format!("has prefix {prefix:?}, which is not among the approved prefixes {allowed}"),
        _ => "is not a valid device serial".to_owned(),
    }
}

fn list_columns(columns: &[String]) -> String {
    let mut shown: Vec<String> = columns
        .iter()
        .take(COLUMNS_SHOWN)
        .map(|c| format!("\"{c}\""))
        .collect();
    if columns.len() > COLUMNS_SHOWN {
        shown.push(format!("and {} more", columns.len() - COLUMNS_SHOWN));
    }
    shown.join(", ")
}

/// How data rows are laid out, decided by the first content line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// No content line read yet.
    Undecided,
    /// One serial per line.
    Plain,
    /// A CSV/TSV with a header row.
    Delimited {
        delimiter: char,
        fields: usize,
        serial_field: usize,
    },
}

/// Reads a list of device serials from `R`, yielding each valid serial or
/// problem in file order. Memory use is flat: one line of at most
/// [`MAX_LINE_BYTES`] and an 8 KiB look-ahead.
///
/// After a file-level problem (see [`ListProblem::is_file_level`]) it yields
/// `None` for good.
pub struct SerialListReader<R: BufRead> {
    /// The first [`BINARY_PROBE_BYTES`] (read ahead to look for NUL bytes),
    /// then the rest of the input.
    input: io::Chain<Cursor<Vec<u8>>, R>,
    prefixes: PrefixTable,
    /// The current line, never more than [`MAX_LINE_BYTES`] long.
    line: Vec<u8>,
    line_no: usize,
    layout: Layout,
    /// Whether any data row (good or bad) was seen.
    saw_data: bool,
    started: bool,
    finished: bool,
}

impl<R: BufRead> SerialListReader<R> {
    /// A reader of the list in `input`, validating serials against
    /// `prefixes`. Nothing is read until the first call to `next`.
    pub fn new(input: R, prefixes: PrefixTable) -> Self {
        Self {
            input: Cursor::new(Vec::new()).chain(input),
            prefixes,
            line: Vec::with_capacity(MAX_LINE_BYTES),
            line_no: 0,
            layout: Layout::Undecided,
            saw_data: false,
            started: false,
            finished: false,
        }
    }

    /// The capacity of the line buffer, to check that memory stays flat.
    #[cfg(test)]
    fn line_buffer_capacity(&self) -> usize {
        self.line.capacity()
    }

    /// Reads the first 8 KiB ahead: refuses a binary file, skips a BOM.
    fn start(&mut self) -> Result<(), ListProblem> {
        let (head, rest) = self.input.get_mut();
        let mut probe = vec![0; BINARY_PROBE_BYTES];
        let mut filled = 0;
        while filled < probe.len() {
            match rest.read(&mut probe[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ListProblem::file(ProblemKind::Io(e.to_string()), b"")),
            }
        }
        probe.truncate(filled);
        if probe.contains(&0) {
            return Err(ListProblem::file(ProblemKind::BinaryFile, &probe));
        }
        let bom = if probe.starts_with(UTF8_BOM) {
            UTF8_BOM.len() as u64
        } else {
            0
        };
        *head = Cursor::new(probe);
        head.set_position(bom);
        Ok(())
    }

    /// Turns the line in `line` into an item, or `None` for a line to skip.
    fn process(
        &mut self,
        line: &[u8],
        too_long: bool,
    ) -> Option<Result<ListedSerial, ListProblem>> {
        let n = self.line_no;
        if too_long {
            // Counts as data, but cannot decide the layout: the next line will.
            self.saw_data = true;
            return Some(Err(ListProblem::at_line(n, ProblemKind::TooLong, line)));
        }
        if line.contains(&0) {
            self.saw_data = true;
            return Some(Err(ListProblem::at_line(n, ProblemKind::Binary, line)));
        }
        // Fields are split from the untrimmed line, so that a trailing empty
        // field (e.g. `X\tFU00022547\t`) still counts.
        let raw = match std::str::from_utf8(line) {
            Ok(raw) => raw,
            Err(_) => return self.process_not_utf8(line),
        };
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        match self.layout {
            Layout::Undecided => self.decide_layout(raw),
            Layout::Plain => {
                self.saw_data = true;
                Some(self.serial(unquote(text)))
            }
            Layout::Delimited {
                delimiter,
                fields,
                serial_field,
            } => {
                let row = match split_fields(raw, delimiter) {
                    Ok(row) => row,
                    Err(kind) => {
                        self.saw_data = true;
                        return Some(Err(ListProblem::at_line(n, kind, text.as_bytes())));
                    }
                };
                let found = row.len();
                let all_empty = row.iter().all(|field| field.is_empty());
                let serial = row.get(serial_field).map_or("", |field| field.as_ref());
                if all_empty {
                    // A spreadsheet's empty row, e.g. `;;`.
                    return None;
                }
                self.saw_data = true;
                if found != fields {
                    let kind = ProblemKind::WrongFieldCount {
                        expected: fields,
                        found,
                    };
                    return Some(Err(ListProblem::at_line(n, kind, text.as_bytes())));
                }
                Some(self.serial(serial))
            }
        }
    }

    fn process_not_utf8(&mut self, line: &[u8]) -> Option<Result<ListedSerial, ListProblem>> {
        let bytes = line.trim_ascii();
        if bytes.is_empty() || bytes.starts_with(b"#") {
            return None;
        }
        if self.layout == Layout::Undecided {
            let is_header = DELIMITERS
                .iter()
                .any(|&d| u8::try_from(d).is_ok_and(|d| bytes.contains(&d)));
            if is_header {
                // A header in a legacy encoding (e.g. Windows-1254 "Sıra No"):
                // only the serial column's name has to be readable.
                let lossy = String::from_utf8_lossy(line);
                return self.decide_layout(&lossy);
            }
            self.layout = Layout::Plain;
        }
        self.saw_data = true;
        Some(Err(ListProblem::at_line(
            self.line_no,
            ProblemKind::NotUtf8,
            bytes,
        )))
    }

    /// Decides the layout from the first content line, `raw` (untrimmed).
    fn decide_layout(&mut self, raw: &str) -> Option<Result<ListedSerial, ListProblem>> {
        let text = raw.trim();
        let delimiters: Vec<char> = DELIMITERS
            .iter()
            .copied()
            .filter(|&d| text.contains(d))
            .collect();
        let Some(&first) = delimiters.first() else {
            self.layout = Layout::Plain;
            let field = unquote(text);
            if is_serial_column_name(field) {
                // A one-column spreadsheet export: its header has no delimiter.
                return None;
            }
            self.saw_data = true;
            return Some(self.serial(field));
        };
        for &delimiter in &delimiters {
            let Ok(names) = split_fields(raw, delimiter) else {
                continue;
            };
            let serial_field = names.iter().position(|name| is_serial_column_name(name));
            if let Some(serial_field) = serial_field {
                self.layout = Layout::Delimited {
                    delimiter,
                    fields: names.len(),
                    serial_field,
                };
                return None;
            }
        }
        let columns = split_fields(raw, first)
            .unwrap_or_else(|_| {
                raw.split(first)
                    .map(|name| Cow::Borrowed(unquote(name)))
                    .collect()
            })
            .iter()
            .map(|name| excerpt(name.as_bytes()))
            .collect();
        Some(Err(ListProblem::file(
            ProblemKind::NoSerialColumn { columns },
            text.as_bytes(),
        )))
    }

    fn serial(&self, value: &str) -> Result<ListedSerial, ListProblem> {
        match DeviceSerial::parse(value, &self.prefixes) {
            Ok(serial) => Ok(ListedSerial {
                line: self.line_no,
                serial,
            }),
            Err(e) => Err(ListProblem::at_line(
                self.line_no,
                ProblemKind::BadSerial(e),
                value.as_bytes(),
            )),
        }
    }
}

impl<R: BufRead> Iterator for SerialListReader<R> {
    type Item = Result<ListedSerial, ListProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            if !self.started {
                self.started = true;
                if let Err(problem) = self.start() {
                    self.finished = true;
                    return Some(Err(problem));
                }
            }
            let too_long = match read_line(&mut self.input, &mut self.line) {
                Ok(Some(too_long)) => too_long,
                Ok(None) => {
                    self.finished = true;
                    if self.saw_data {
                        return None;
                    }
                    return Some(Err(ListProblem::file(ProblemKind::EmptyList, b"")));
                }
                Err(e) => {
                    self.finished = true;
                    let message = format!("{e} (after line {})", self.line_no);
                    return Some(Err(ListProblem::file(ProblemKind::Io(message), b"")));
                }
            };
            self.line_no += 1;
            let line = std::mem::take(&mut self.line);
            let item = self.process(&line, too_long);
            self.line = line;
            if let Some(item) = item {
                if let Err(problem) = &item {
                    self.finished |= problem.is_file_level();
                }
                return Some(item);
            }
        }
        None
    }
}

impl<R: BufRead> FusedIterator for SerialListReader<R> {}

/// Reads one line (ended by LF, CRLF, a lone CR or the end of input) into
/// `buf`, keeping at most [`MAX_LINE_BYTES`] of it and discarding the rest.
/// Returns `None` at the end of input, else whether the line was too long.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(read_any.then_some(too_long));
        }
        read_any = true;
        let end = chunk.iter().position(|&b| b == b'\n' || b == b'\r');
        let content = &chunk[..end.unwrap_or(chunk.len())];
        let room = MAX_LINE_BYTES - buf.len();
        if too_long || content.len() > room {
            if !too_long {
                buf.extend_from_slice(&content[..room]);
                too_long = true;
            }
        } else {
            buf.extend_from_slice(content);
        }
        let Some(end) = end else {
            let used = chunk.len();
            input.consume(used);
            continue;
        };
        let ended_by_cr = chunk[end] == b'\r';
        input.consume(end + 1);
        if ended_by_cr {
            skip_lf_after_cr(input)?;
        }
        return Ok(Some(too_long));
    }
}

/// After a CR, consumes the LF of a CRLF line end, if there is one.
fn skip_lf_after_cr(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        match input.fill_buf() {
            Ok(next) => {
                if next.first() == Some(&b'\n') {
                    input.consume(1);
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Removes one pair of surrounding double quotes, and whitespace outside and
/// inside them.
/// Splits one row of a CSV/TSV list into its fields, as RFC 4180 reads
/// them: a field that starts with `"` runs to the closing `"` and may hold
/// the delimiter, and `""` for a quote; any other field runs to the next
/// delimiter. Blanks around a field, and inside its quotes, are dropped, as
/// spreadsheets pad columns.
///
/// A row is one line: a quoted field that does not close on its line is
/// refused. No serial list needs a line break inside a field, and one row
/// per line keeps every line number exact and every row under the line cap,
/// which is why this is written here rather than read through a CSV crate.
fn split_fields(raw: &str, delimiter: char) -> Result<Vec<Cow<'_, str>>, ProblemKind> {
    let is_blank = |c: char| c.is_whitespace() && c != delimiter;
    let mut fields = Vec::new();
    let mut rest = raw;
    loop {
        let start = rest.trim_start_matches(is_blank);
        let Some(quoted) = start.strip_prefix('"') else {
            match rest.split_once(delimiter) {
                Some((field, after)) => {
                    fields.push(Cow::Borrowed(field.trim()));
                    rest = after;
                    continue;
                }
                None => {
                    fields.push(Cow::Borrowed(rest.trim()));
                    return Ok(fields);
                }
            }
        };
        // Inside quotes: `""` is a quote, a lone `"` closes the field.
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let after_quote = loop {
            match chars.next() {
                None => return Err(ProblemKind::UnclosedQuote),
                Some((i, '"')) => {
                    if quoted[i + 1..].starts_with('"') {
                        value.push('"');
                        chars.next();
                    } else {
                        break &quoted[i + 1..];
                    }
                }
                Some((_, c)) => value.push(c),
            }
        };
        fields.push(Cow::Owned(value.trim().to_owned()));
        let after_quote = after_quote.trim_start_matches(is_blank);
        if after_quote.is_empty() {
            return Ok(fields);
        }
        match after_quote.strip_prefix(delimiter) {
            Some(after) => rest = after,
            None => return Err(ProblemKind::TextAfterQuote),
        }
    }
}

fn unquote(field: &str) -> &str {
    let field = field.trim();
    match field
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => inner.trim(),
        None => field,
    }
}

/// Lower-cased (with Turkish `İ`/`ı` read as `i`), trimmed, with spaces and
/// hyphens read as `_`.
fn normalize_header(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            'İ' | 'ı' => 'i',
            ' ' | '-' => '_',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_serial_column_name(name: &str) -> bool {
    let name = normalize_header(name);
    SERIAL_COLUMN_NAMES.contains(&name.as_str())
}

/// A short, terminal-safe rendering of untrusted bytes: at most
/// [`EXCERPT_CHARS`] characters, `…` when cut; control and other
/// non-printable characters, `\` and `"` escaped with
/// [`char::escape_default`]; bytes that are not UTF-8 shown as `\xNN`.
fn excerpt(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut chars = 0;
    // Where to cut if the excerpt overflows: the end of the last piece that
    // still leaves room for the `…`.
    let mut cut = 0;
    let mut push = |piece: &str, out: &mut String| -> bool {
        let len = piece.chars().count();
        if chars + len > EXCERPT_CHARS {
            out.truncate(cut);
            out.push('…');
            return false;
        }
        out.push_str(piece);
        chars += len;
        if chars < EXCERPT_CHARS {
            cut = out.len();
        }
        true
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let piece = if is_shown_raw(c) {
                c.to_string()
            } else {
                c.escape_default().to_string()
            };
            if !push(&piece, &mut out) {
                return out;
            }
        }
        for byte in chunk.invalid() {
            if !push(&format!("\\x{byte:02x}"), &mut out) {
                return out;
            }
        }
    }
    out
}

/// Printable characters other than `\` and `"` (which are escaped to keep
/// the quoted excerpt unambiguous); the space is the only whitespace kept.
fn is_shown_raw(c: char) -> bool {
    if c == ' ' || c == '\'' {
        return true;
    }
    let mut escaped = c.escape_debug();
    escaped.next() == Some(c) && escaped.next().is_none() && !c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    const GOOD: &str = "FU00022547";

    fn any() -> PrefixTable {
        PrefixTable::any()
    }

    /// All items of `input`, each as `Ok((line, serial))` or
    /// `Err((line, kind, excerpt))`.
    fn read_all(input: &[u8], prefixes: PrefixTable) -> Vec<Result<(usize, String), ListProblem>> {
        SerialListReader::new(input, prefixes)
            .map(|item| item.map(|s| (s.line, s.serial.as_str().to_owned())))
            .collect()
    }

    fn ok(line: usize, serial: &str) -> Result<(usize, String), ListProblem> {
        Ok((line, serial.to_owned()))
    }

    fn problem(item: &Result<(usize, String), ListProblem>) -> &ListProblem {
        match item {
            Err(p) => p,
            Ok(s) => panic!("expected a problem, got {s:?}"),
        }
    }

    #[test]
    fn plain_list_yields_each_serial_with_its_line() {
        let items = read_all(b"FU00022547\nJI1234567\nABC12345678\n", any());
        assert_eq!(
            items,
            [
                ok(1, "FU00022547"),
                ok(2, "JI1234567"),
                ok(3, "ABC12345678")
            ]
        );
    }

    #[test]
    fn last_line_needs_no_line_end_and_whitespace_is_trimmed() {
        let items = read_all(b"  FU00022547\t\n\tJI1234567 ", any());
        assert_eq!(items, [ok(1, "FU00022547"), ok(2, "JI1234567")]);
    }

    #[test]
    fn bom_crlf_comments_and_blank_lines_keep_physical_line_numbers() {
        let input = b"\xEF\xBB\xBF# order 42\r\n\r\nFU00022547\r\n   \r\n  # another comment\r\nJI1234567\r\n\r\n";
        let items = read_all(input, any());
        assert_eq!(items, [ok(3, "FU00022547"), ok(6, "JI1234567")]);
    }

    #[test]
    fn a_lone_cr_ends_a_line_too() {
        let items = read_all(b"FU00022547\rJI1234567\r\r\nAB1234567\r", any());
        assert_eq!(
            items,
            [ok(1, "FU00022547"), ok(2, "JI1234567"), ok(4, "AB1234567")]
        );
    }

    #[test]
    fn semicolon_csv_header_picks_the_seri_no_column() {
        let input = b"No;Seri No;Model\n1;FU00022547;X-100\n2; JI1234567 ;X-200\n";
        let items = read_all(input, any());
        assert_eq!(items, [ok(2, "FU00022547"), ok(3, "JI1234567")]);
    }

    #[test]
    fn header_names_are_case_insensitive_and_accept_hyphens_and_turkish_capitals() {
        for (header, row) in [
            ("SERIAL_NUMBER,model", "FU00022547,X"),
            ("model,serial-no", "X,FU00022547"),
            ("model, Mali Sicil No ", "X,FU00022547"),
            ("MALİ SİCİL NO,model", "FU00022547,X"),
            ("Sicil_No,model", "FU00022547,X"),
            ("model,Serial", "X,FU00022547"),
        ] {
            let input = format!("{header}\n{row}\n");
            assert_eq!(read_all(input.as_bytes(), any()), [ok(2, GOOD)], "{header}");
        }
    }

    /// RFC 4180: a quoted field may hold the separator and `""` for a quote.
    #[test]
    fn quoted_csv_fields_may_hold_the_separator_and_escaped_quotes() {
        let list = b"\"No\",\"Serial\",\"Model\"\n\
\"1\",\"JI12345671\",\"YK, 100\"\n\
2,FU00022547,\"the \"\"Y\"\" model, v2\"\n\
\"3\" , \" AB1234567 \" ,plain\n";
        assert_eq!(
            read_all(list, any()),
            [ok(2, "JI12345671"), ok(3, "FU00022547"), ok(4, "AB1234567")]
        );
    }

    #[test]
    fn the_header_may_be_quoted_and_hold_the_separator() {
        let list = b"\"Model; name\";\"Seri No\"\n\"YK; 100\";FU00022547\n";
        assert_eq!(read_all(list, any()), [ok(2, "FU00022547")]);
    }

    #[test]
    fn a_quote_that_does_not_close_or_text_after_it_is_a_line_problem() {
        let list = b"no,serial\n1,\"FU00022547\n2,\"FU00022548\"x\n3,FU00022549\n";
        let items = read_all(list, any());
        assert_eq!(problem(&items[0]).line, 2);
        assert_eq!(problem(&items[0]).kind, ProblemKind::UnclosedQuote);
        assert_eq!(problem(&items[1]).line, 3);
        assert_eq!(problem(&items[1]).kind, ProblemKind::TextAfterQuote);
        assert_eq!(items[2], ok(4, "FU00022549"));
    }

    #[test]
    fn split_fields_reads_rfc_4180_rows() {
        let fields = |raw| {
            split_fields(raw, ',')
                .map(|row| row.into_iter().map(Cow::into_owned).collect::<Vec<_>>())
        };
        assert_eq!(fields("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(fields("\"a,b\",c").unwrap(), ["a,b", "c"]);
        assert_eq!(fields("\"\"\"\",x").unwrap(), ["\"", "x"]);
        assert_eq!(fields("a,,\"\"").unwrap(), ["a", "", ""]);
        assert_eq!(fields("a,").unwrap(), ["a", ""]);
        assert_eq!(fields("\"a"), Err(ProblemKind::UnclosedQuote));
        assert_eq!(fields("\"a\"b,c"), Err(ProblemKind::TextAfterQuote));
        // Tabs are blanks around a field, except as the separator itself.
        let row = split_fields("\t\"a\"\t\tb", '\t').unwrap();
        assert_eq!(row, ["", "a", "", "b"]);
    }

    #[test]
    fn tab_separated_list() {
        let input = b"model\tserial\tnote\nX-100\tFU00022547\t\nX-200\tJI1234567\tspare\n";
        let items = read_all(input, any());
        assert_eq!(items, [ok(2, "FU00022547"), ok(3, "JI1234567")]);
    }

    #[test]
    fn a_header_without_a_serial_column_is_a_file_level_problem_naming_the_columns() {
        let items = read_all(b"No;Model;Date\n1;FU00022547;2024\n", any());
        assert_eq!(items.len(), 1, "the reader stops");
        let p = problem(&items[0]);
        assert!(p.is_file_level());
        assert_eq!(p.line, 0);
        assert_eq!(
            p.kind,
            ProblemKind::NoSerialColumn {
                columns: vec!["No".into(), "Model".into(), "Date".into()]
            }
        );
        assert_eq!(
            p.to_string(),
            "file: the header row has no serial column (columns: \"No\", \"Model\", \"Date\"); \
             expected one of serial, serial_number, serial_no, seri_no, sicil_no, mali_sicil_no"
        );
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_reported_and_reading_goes_on() {
        let input = b"No;Seri No;Model\n1;FU00022547\n2;JI1234567;X;extra\n3;AB1234567;X\n";
        let items = read_all(input, any());
        assert_eq!(items.len(), 3);
        let p = problem(&items[0]);
        assert_eq!(
            (p.line, &p.kind),
            (
                2,
                &ProblemKind::WrongFieldCount {
                    expected: 3,
                    found: 2
                }
            )
        );
        assert_eq!(
            p.to_string(),
            "line 2: \"1;FU00022547\" has 2 fields, but the header row has 3"
        );
        let p = problem(&items[1]);
        assert_eq!(
            (p.line, &p.kind),
            (
                3,
                &ProblemKind::WrongFieldCount {
                    expected: 3,
                    found: 4
                }
            )
        );
        assert_eq!(items[2], ok(4, "AB1234567"));
    }

    #[test]
    fn empty_spreadsheet_rows_are_skipped_like_blank_lines() {
        let input = b"No;Seri No;Model\n;;\n1;FU00022547;X\n ; ; \n";
        assert_eq!(read_all(input, any()), [ok(3, GOOD)]);
    }

    #[test]
    fn double_quoted_fields_are_unwrapped() {
        let input = b"\"No\",\"Serial Number\"\n\"1\",\"FU00022547\"\n2, \" JI1234567\" \n";
        let items = read_all(input, any());
        assert_eq!(items, [ok(2, "FU00022547"), ok(3, "JI1234567")]);
        // And in a plain list.
        assert_eq!(read_all(b"\"FU00022547\"\n", any()), [ok(1, GOOD)]);
    }

    #[test]
    fn a_one_column_export_with_a_serial_header_and_no_delimiter() {
        let items = read_all(b"Seri No\nFU00022547\n", any());
        assert_eq!(items, [ok(2, GOOD)]);
    }

    #[test]
    fn bad_serials_are_reported_with_the_reason_and_reading_goes_on() {
        let table = PrefixTable::new(["FU", "JI"]).unwrap();
        let input = b"FU00022547\nFU-0002254\nfu00022547\nAB00022547\nJI1234567\n";
        let items = read_all(input, table);
        assert_eq!(items.len(), 5);
        assert_eq!(items[0], ok(1, GOOD));
        assert_eq!(items[4], ok(5, "JI1234567"));

        let format = problem(&items[1]);
        assert_eq!(format.line, 2);
        assert_eq!(
            format.kind,
            ProblemKind::BadSerial(IdError::DeviceSerialFormat {
                value: "FU-0002254".into()
            })
        );
        assert_eq!(
            format.to_string(),
            "line 2: \"FU-0002254\" must be 2-3 capital letters followed by 7-8 digits (e.g. FU00022547)"
        );

        let lower = problem(&items[2]);
        assert_eq!(lower.line, 3);
        assert!(matches!(
            lower.kind,
            ProblemKind::BadSerial(IdError::DeviceSerialFormat { .. })
        ));

        let prefix = problem(&items[3]);
        assert_eq!(prefix.line, 4);
        assert!(matches!(
            prefix.kind,
            ProblemKind::BadSerial(IdError::DeviceSerialPrefix { .. })
        ));
        assert_eq!(
            prefix.to_string(),
            "line 4: \"AB00022547\" has prefix \"AB\", which is not among the approved prefixes FU, JI"
        );
        assert!(!prefix.is_file_level());
    }

    #[test]
    fn a_300_byte_line_is_too_long_and_the_next_line_is_still_read() {
        let mut input = vec![b'A'; 300];
        input.extend_from_slice(b"\nFU00022547\n");
        let items = read_all(&input, any());
        assert_eq!(items.len(), 2);
        let p = problem(&items[0]);
        assert_eq!((p.line, &p.kind), (1, &ProblemKind::TooLong));
        assert_eq!(p.excerpt, format!("{}…", "A".repeat(39)));
        assert_eq!(
            p.to_string(),
            format!("line 1: \"{}…\" is longer than 256 bytes", "A".repeat(39))
        );
        assert_eq!(items[1], ok(2, GOOD));
    }

    #[test]
    fn a_line_of_exactly_max_line_bytes_is_read() {
        let mut input = vec![b' '; MAX_LINE_BYTES - GOOD.len()];
        input.extend_from_slice(GOOD.as_bytes());
        input.extend_from_slice(b"\r\n");
        assert_eq!(read_all(&input, any()), [ok(1, GOOD)]);
        input.insert(0, b' ');
        let items = read_all(&input, any());
        assert_eq!(problem(&items[0]).kind, ProblemKind::TooLong);
    }

    #[test]
    fn a_10_mb_line_is_reported_once_with_flat_memory() {
        let input = io::repeat(b'A')
            .take(10_000_000)
            .chain(&b"\nFU00022547\n"[..]);
        let mut reader =
            SerialListReader::new(BufReader::with_capacity(8192, input), PrefixTable::any());
        let first = reader.next().unwrap().unwrap_err();
        assert_eq!((first.line, &first.kind), (1, &ProblemKind::TooLong));
        assert!(reader.line_buffer_capacity() <= 2 * MAX_LINE_BYTES);
        let second = reader.next().unwrap().unwrap();
        assert_eq!((second.line, second.serial.as_str()), (2, GOOD));
        assert!(reader.next().is_none());
        assert!(reader.line_buffer_capacity() <= 2 * MAX_LINE_BYTES);
    }

    #[test]
    fn a_nul_in_the_first_8_kib_gives_one_binary_file_problem_then_none() {
        let mut input = b"FU00022547\n".repeat(500);
        input[3000] = 0;
        let mut reader = SerialListReader::new(&input[..], any());
        let p = reader.next().unwrap().unwrap_err();
        assert_eq!((p.line, &p.kind), (0, &ProblemKind::BinaryFile));
        assert!(p.is_file_level());
        assert!(p
            .to_string()
            .starts_with("file: the file is not a text list"));
        assert!(reader.next().is_none());
        assert!(reader.next().is_none());
    }

    #[test]
    fn utf16_text_is_a_binary_file_with_an_escaped_excerpt() {
        let input = b"\xFF\xFEF\0U\0";
        let items = read_all(input, any());
        assert_eq!(items.len(), 1);
        assert_eq!(problem(&items[0]).excerpt, "\\xff\\xfeF\\u{0}U\\u{0}");
    }

    #[test]
    fn a_nul_after_the_first_8_kib_is_reported_for_its_line_only() {
        let mut input = b"FU00022547\n".repeat(1000); // 11,000 bytes
        input[9 * 1100 + 2] = 0; // on line 901
        let items = read_all(&input, any());
        assert_eq!(items.len(), 1000);
        let p = problem(&items[900]);
        assert_eq!((p.line, &p.kind), (901, &ProblemKind::Binary));
        assert_eq!(p.excerpt, "FU\\u{0}0022547");
        assert!(items.iter().filter(|i| i.is_err()).count() == 1);
    }

    #[test]
    fn invalid_utf8_is_reported_for_that_line_only() {
        let input = b"FU00022547\nJI12\xFF4567\nAB1234567\n";
        let items = read_all(input, any());
        assert_eq!(items.len(), 3);
        let p = problem(&items[1]);
        assert_eq!((p.line, &p.kind), (2, &ProblemKind::NotUtf8));
        assert_eq!(p.excerpt, "JI12\\xff4567");
        assert_eq!(
            p.to_string(),
            "line 2: \"JI12\\xff4567\" is not valid UTF-8 text (save the list as UTF-8)"
        );
        assert_eq!(items[0], ok(1, GOOD));
        assert_eq!(items[2], ok(3, "AB1234567"));
    }

    #[test]
    fn a_windows_1254_header_still_finds_the_serial_column() {
        // "Sıra No;Seri No" with ı as the Windows-1254 byte 0xFD.
        let input = b"S\xFDra No;Seri No\n1;FU00022547\n";
        assert_eq!(read_all(input, any()), [ok(2, GOOD)]);
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_lists() {
        for input in [
            &b""[..],
            b"\xEF\xBB\xBF",
            b"\n\n  \r\n",
            b"# serials for order 42\n\n# none yet\n",
        ] {
            let items = read_all(input, any());
            assert_eq!(items.len(), 1, "{input:?}");
            let p = problem(&items[0]);
            assert_eq!((p.line, &p.kind), (0, &ProblemKind::EmptyList));
            assert!(p.is_file_level());
            assert_eq!(p.to_string(), "file: the list contains no device serials");
        }
    }

    #[test]
    fn a_header_only_csv_is_an_empty_list() {
        let items = read_all(b"No;Seri No;Model\n\n", any());
        assert_eq!(items.len(), 1);
        assert_eq!(problem(&items[0]).kind, ProblemKind::EmptyList);
    }

    #[test]
    fn a_list_of_only_bad_lines_is_not_an_empty_list() {
        let items = read_all(b"nonsense\n", any());
        assert_eq!(items.len(), 1);
        assert!(matches!(problem(&items[0]).kind, ProblemKind::BadSerial(_)));
    }

    #[test]
    fn a_read_error_is_a_file_level_problem_and_stops_the_reader() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let input = b"FU00022547\n".chain(Failing);
        let mut reader = SerialListReader::new(BufReader::new(input), any());
        let p = reader.next().unwrap().unwrap_err();
        assert_eq!(p.kind, ProblemKind::Io("disk on fire".into()));
        assert_eq!(p.to_string(), "file: read error: disk on fire");
        assert!(reader.next().is_none());
    }

    #[test]
    fn excerpts_escape_control_and_invisible_characters() {
        assert_eq!(excerpt(b"FU\x1b[31m0002\t"), "FU\\u{1b}[31m0002\\t");
        assert_eq!(
            excerpt("a\u{202e}b\u{200b}c\u{a0}d".as_bytes()),
            "a\\u{202e}b\\u{200b}c\\u{a0}d"
        );
        assert_eq!(excerpt(b"a\\b\"c'd e"), "a\\\\b\\\"c'd e");
        assert_eq!(excerpt("Sıra İ".as_bytes()), "Sıra İ");
        assert_eq!(excerpt(b"\xC3\x28"), "\\xc3(");
    }

    #[test]
    fn excerpts_are_at_most_40_characters_and_never_cut_an_escape() {
        let exactly_40 = "B".repeat(40);
        assert_eq!(excerpt(exactly_40.as_bytes()), exactly_40);
        let cut = excerpt("C".repeat(41).as_bytes());
        assert_eq!(cut, format!("{}…", "C".repeat(39)));
        assert_eq!(cut.chars().count(), 40);
        // 36 characters, then an escape that does not fit whole.
        let input = format!("{}\u{1b}XYZ", "D".repeat(36));
        assert_eq!(excerpt(input.as_bytes()), format!("{}…", "D".repeat(36)));
        let binary = excerpt(&[0xFF; 100]);
        assert_eq!(binary, format!("{}…", "\\xff".repeat(9)));
        assert!(binary.chars().count() <= 40);
    }

    #[test]
    fn bad_serial_excerpts_are_escaped_in_the_message() {
        let items = read_all(b"FU\x1b[2J0002254\n", any());
        assert_eq!(
            problem(&items[0]).to_string(),
            "line 1: \"FU\\u{1b}[2J0002254\" must be 2-3 capital letters followed by 7-8 digits (e.g. FU00022547)"
        );
    }
}
