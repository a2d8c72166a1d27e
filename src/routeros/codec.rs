//! RouterOS API wire format: length-prefixed words, sentences ended by an empty
//! word, and the typed view of reply sentences.
//!
//! Length prefix (big-endian):
//! - `0x00..=0x7F`            1 byte
//! - `0x80..=0x3FFF`          2 bytes, `len | 0x8000`
//! - `0x4000..=0x1F_FFFF`     3 bytes, `len | 0xC0_0000`
//! - `0x20_0000..=0xFFF_FFFF` 4 bytes, `len | 0xE000_0000`
//! - larger                   `0xF0` then 4 bytes of `len`
//!
//! A first byte of `0xF8` or above is a reserved control byte.

use std::collections::BTreeMap;
use std::fmt;

/// Words longer than this are refused by default: a real reply word is an
/// attribute, so anything bigger means garbage or a desynchronised stream.
pub const DEFAULT_MAX_WORD_LEN: usize = 1 << 20;
/// Default limit on words per sentence (a `!re` has a few dozen attributes).
pub const DEFAULT_MAX_WORDS: usize = 4096;
/// Bytes of one sentence's words together: without it, 4096 words of 1 MiB each
/// could be held before the sentence ends.
pub const MAX_SENTENCE_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("reserved control byte 0x{0:02X} in length prefix")]
    ControlByte(u8),
    #[error("word of {len} bytes exceeds the limit of {max}")]
    WordTooLong { len: u64, max: usize },
    #[error("sentence has more than {0} words")]
    TooManyWords(usize),
    #[error("sentence is longer than {0} bytes")]
    SentenceTooLong(usize),
    #[error("empty sentence")]
    EmptySentence,
    #[error("unknown reply word {0:?}")]
    UnknownReply(String),
}

/// Appends the length prefix for `len` to `out`.
pub fn encode_length(len: u32, out: &mut Vec<u8>) {
    let b = len.to_be_bytes();
    match len {
        0..=0x7F => out.push(b[3]),
        0x80..=0x3FFF => out.extend_from_slice(&[b[2] | 0x80, b[3]]),
        0x4000..=0x1F_FFFF => out.extend_from_slice(&[b[1] | 0xC0, b[2], b[3]]),
        0x20_0000..=0xFFF_FFFF => out.extend_from_slice(&[b[0] | 0xE0, b[1], b[2], b[3]]),
        _ => {
            out.push(0xF0);
            out.extend_from_slice(&b);
        }
    }
}

/// Decodes a length prefix at the start of `buf`.
/// `Ok(None)` means more bytes are needed; otherwise returns (length, prefix size).
pub fn decode_length(buf: &[u8]) -> Result<Option<(u32, usize)>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let size = match first {
        0x00..=0x7F => 1,
        0x80..=0xBF => 2,
        0xC0..=0xDF => 3,
        0xE0..=0xEF => 4,
        0xF0..=0xF7 => 5,
        _ => return Err(CodecError::ControlByte(first)),
    };
    if buf.len() < size {
        return Ok(None);
    }
    let len = match size {
        1 => u32::from(first),
        2 => u32::from_be_bytes([0, 0, first & 0x3F, buf[1]]),
        3 => u32::from_be_bytes([0, first & 0x1F, buf[1], buf[2]]),
        4 => u32::from_be_bytes([first & 0x0F, buf[1], buf[2], buf[3]]),
        _ => u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]),
    };
    Ok(Some((len, size)))
}

/// Appends one encoded word. Words over 4 GiB cannot be framed.
pub fn encode_word(word: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let len = u32::try_from(word.len()).map_err(|_| CodecError::WordTooLong {
        len: word.len() as u64,
        max: u32::MAX as usize,
    })?;
    encode_length(len, out);
    out.extend_from_slice(word);
    Ok(())
}

/// Encodes a whole sentence including the terminating empty word.
pub fn encode_sentence<S: AsRef<str>>(words: &[S]) -> Result<Vec<u8>, CodecError> {
    if words.is_empty() {
        return Err(CodecError::EmptySentence);
    }
    let mut out = Vec::with_capacity(words.iter().map(|w| w.as_ref().len() + 2).sum::<usize>() + 1);
    for w in words {
        encode_word(&crate::names::encode(w.as_ref()), &mut out)?;
    }
    out.push(0);
    Ok(out)
}

/// Incremental sentence decoder: feed whatever the socket returned, then take
/// complete sentences. Split points anywhere (even inside a length prefix) are fine.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    words: Vec<String>,
    max_word_len: usize,
    max_words: usize,
    /// Bytes of the words of the sentence being read.
    sentence_bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_WORD_LEN, DEFAULT_MAX_WORDS)
    }

    pub fn with_limits(max_word_len: usize, max_words: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            words: Vec::new(),
            sentence_bytes: 0,
            max_word_len,
            max_words,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        // Drop consumed bytes before growing, so the buffer stays bounded by one word.
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet part of a returned sentence (partial words included).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.words.iter().map(String::len).sum::<usize>()
    }

    /// Next complete sentence, skipping empty ones (the protocol says to ignore them).
    /// After an error the stream is unusable: the caller should drop the connection.
    pub fn next_sentence(&mut self) -> Result<Option<Vec<String>>, CodecError> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some((len, size)) = decode_length(rest)? else {
                return Ok(None);
            };
            let len = len as usize;
            if len > self.max_word_len {
                return Err(CodecError::WordTooLong {
                    len: len as u64,
                    max: self.max_word_len,
                });
            }
            if rest.len() < size + len {
                return Ok(None);
            }
            let word = &rest[size..size + len];
            self.pos += size + len;
            if len == 0 {
                if self.words.is_empty() {
                    continue;
                }
                self.sentence_bytes = 0;
                return Ok(Some(std::mem::take(&mut self.words)));
            }
            if self.words.len() >= self.max_words {
                return Err(CodecError::TooManyWords(self.max_words));
            }
            self.sentence_bytes += len;
            if self.sentence_bytes > MAX_SENTENCE_BYTES {
                return Err(CodecError::SentenceTooLong(MAX_SENTENCE_BYTES));
            }
            // RouterOS sends bytes in the router's code page: non-UTF-8 bytes in
            // names or comments are kept exactly ([`crate::names`]), so a Latin-1
            // PPP user is the same user as in its RADIUS packets.
            self.words.push(crate::names::decode(word));
        }
    }
}

/// Splits an attribute word `=key=value` (value may contain `=`).
pub fn parse_attr(word: &str) -> Option<(&str, &str)> {
    let body = word.strip_prefix('=')?;
    match body.split_once('=') {
        Some((k, v)) => Some((k, v)),
        None => Some((body, "")),
    }
}

/// What a reply sentence says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    Re,
    Done,
    Trap {
        category: Option<u32>,
        message: String,
    },
    /// The router closes the connection after this.
    Fatal(String),
    /// RouterOS 7.18+: a command produced no data.
    Empty,
}

/// One reply sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub attrs: BTreeMap<String, String>,
    pub tag: Option<String>,
}

impl Reply {
    pub fn parse(words: Vec<String>) -> Result<Reply, CodecError> {
        let mut it = words.into_iter();
        let first = it.next().ok_or(CodecError::EmptySentence)?;
        let mut attrs = BTreeMap::new();
        let mut tag = None;
        let mut plain = Vec::new();
        for w in it {
            if let Some(t) = w.strip_prefix(".tag=") {
                tag = Some(t.to_string());
            } else if let Some((k, v)) = parse_attr(&w) {
                attrs.insert(k.to_string(), v.to_string());
            } else {
                plain.push(w);
            }
        }
        let kind = match first.as_str() {
            "!re" => ReplyKind::Re,
            "!done" => ReplyKind::Done,
            "!empty" => ReplyKind::Empty,
            "!trap" => ReplyKind::Trap {
                category: attrs.get("category").and_then(|c| c.parse().ok()),
                message: attrs.get("message").cloned().unwrap_or_default(),
            },
            // The reason follows as a bare word, not as =message=.
            "!fatal" => ReplyKind::Fatal(
                attrs
                    .get("message")
                    .cloned()
                    .unwrap_or_else(|| plain.join(" ")),
            ),
            _ => return Err(CodecError::UnknownReply(first)),
        };
        Ok(Reply { kind, attrs, tag })
    }

    /// Words of this reply, for servers (the double) that send it.
    pub fn to_words(&self) -> Vec<String> {
        let mut words = vec![match &self.kind {
            ReplyKind::Re => "!re".to_string(),
            ReplyKind::Done => "!done".to_string(),
            ReplyKind::Empty => "!empty".to_string(),
            ReplyKind::Trap { .. } => "!trap".to_string(),
            ReplyKind::Fatal(_) => "!fatal".to_string(),
        }];
        match &self.kind {
            ReplyKind::Fatal(msg) => words.push(msg.clone()),
            ReplyKind::Trap { category, message } => {
                if let Some(c) = category {
                    words.push(format!("=category={c}"));
                }
                words.push(format!("=message={message}"));
            }
            _ => {}
        }
        for (k, v) in &self.attrs {
            if matches!(self.kind, ReplyKind::Trap { .. }) && (k == "category" || k == "message") {
                continue;
            }
            words.push(format!("={k}={v}"));
        }
        if let Some(t) = &self.tag {
            words.push(format!(".tag={t}"));
        }
        words
    }
}

/// A command sentence to send: the command path, then attributes, API
/// attributes (`.proplist`) and queries, in the order added. The client adds `.tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    words: Vec<String>,
}

impl Command {
    pub fn new(path: &str) -> Self {
        Command {
            words: vec![path.to_string()],
        }
    }

    /// `=key=value`
    pub fn attr(mut self, key: &str, value: &str) -> Self {
        self.words.push(format!("={key}={value}"));
        self
    }

    /// `=.proplist=a,b,c`: only these properties come back.
    pub fn proplist(mut self, props: &[&str]) -> Self {
        if !props.is_empty() {
            self.words.push(format!("=.proplist={}", props.join(",")));
        }
        self
    }

    /// `?key=value`: equality query (several are ANDed).
    pub fn query_eq(mut self, key: &str, value: &str) -> Self {
        self.words.push(format!("?{key}={value}"));
        self
    }

    /// A raw word, e.g. a query operation `?#|`.
    pub fn word(mut self, word: &str) -> Self {
        self.words.push(word.to_string());
        self
    }

    pub fn path(&self) -> &str {
        &self.words[0]
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }
}

impl fmt::Debug for Command {
    // Never print a login password, even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<&str> = self
            .words
            .iter()
            .map(|w| {
                if w.starts_with("=password=") {
                    "=password=***"
                } else {
                    w.as_str()
                }
            })
            .collect();
        f.debug_tuple("Command").field(&shown).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        encode_length(len, &mut v);
        v
    }

    #[test]
    fn length_boundaries_fixed_bytes() {
        let table: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (0x7F, &[0x7F]),
            (0x80, &[0x80, 0x80]),
            (0x3FFF, &[0xBF, 0xFF]),
            (0x4000, &[0xC0, 0x40, 0x00]),
            (0x1F_FFFF, &[0xDF, 0xFF, 0xFF]),
            (0x20_0000, &[0xE0, 0x20, 0x00, 0x00]),
            (0xFFF_FFFF, &[0xEF, 0xFF, 0xFF, 0xFF]),
            (0x1000_0000, &[0xF0, 0x10, 0x00, 0x00, 0x00]),
            (u32::MAX, &[0xF0, 0xFF, 0xFF, 0xFF, 0xFF]),
        ];
        for (len, bytes) in table {
            assert_eq!(enc(*len), *bytes, "encode {len:#x}");
            assert_eq!(
                decode_length(bytes).unwrap(),
                Some((*len, bytes.len())),
                "decode {len:#x}"
            );
            // Every strict prefix is "need more", never an error or a wrong value.
            for cut in 0..bytes.len() {
                assert_eq!(decode_length(&bytes[..cut]).unwrap(), None);
            }
        }
    }

    #[test]
    fn control_bytes_are_errors() {
        for b in 0xF8..=0xFFu8 {
            assert_eq!(
                decode_length(&[b, 0, 0, 0, 0]),
                Err(CodecError::ControlByte(b))
            );
        }
    }

    #[test]
    fn non_utf8_words_keep_their_bytes_both_ways() {
        // A Latin-1 PPP name as the router sends it.
        let mut raw = Vec::new();
        encode_word(b"=name=m\xfcller", &mut raw).unwrap();
        raw.push(0);
        let mut d = Decoder::new();
        d.feed(&raw);
        let words = d.next_sentence().unwrap().unwrap();
        // The same user as the RADIUS packets' Latin-1 User-Name, not "m\u{fffd}ller".
        assert_eq!(
            words,
            [format!("=name={}", crate::names::decode(b"m\xfcller"))]
        );
        assert_ne!(words[0], "=name=m\u{fffd}ller");
        assert_eq!(encode_sentence(&words).unwrap(), raw);
    }

    #[test]
    fn sentence_round_trip_simple() {
        let bytes = encode_sentence(&["/login", "=name=admin", "=password=a=b"]).unwrap();
        assert_eq!(bytes[0], 6);
        assert_eq!(&bytes[1..7], b"/login");
        assert_eq!(*bytes.last().unwrap(), 0);
        let mut d = Decoder::new();
        d.feed(&bytes);
        assert_eq!(
            d.next_sentence().unwrap().unwrap(),
            vec!["/login", "=name=admin", "=password=a=b"]
        );
        assert_eq!(d.next_sentence().unwrap(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn empty_sentence_refused_and_skipped() {
        assert_eq!(encode_sentence::<&str>(&[]), Err(CodecError::EmptySentence));
        let mut d = Decoder::new();
        d.feed(&[0, 0, 3, b'!', b'r', b'e', 0]);
        assert_eq!(d.next_sentence().unwrap().unwrap(), vec!["!re"]);
    }

    #[test]
    fn oversized_word_is_refused_without_allocating() {
        let mut d = Decoder::with_limits(100, 10);
        d.feed(&[0xF0, 0x7F, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(
            d.next_sentence(),
            Err(CodecError::WordTooLong {
                len: 0x7FFF_FFFF,
                max: 100
            })
        ));
        let mut d = Decoder::with_limits(100, 2);
        d.feed(&[1, b'a', 1, b'b', 1, b'c', 0]);
        assert_eq!(d.next_sentence(), Err(CodecError::TooManyWords(2)));
    }

    #[test]
    fn long_words_at_boundaries_round_trip() {
        for len in [0x7F, 0x80, 0x3FFF, 0x4000] {
            let w = "x".repeat(len);
            let bytes = encode_sentence(&[w.as_str()]).unwrap();
            let mut d = Decoder::new();
            d.feed(&bytes);
            assert_eq!(d.next_sentence().unwrap().unwrap()[0].len(), len);
        }
    }

    /// xorshift64*: deterministic pseudo-random numbers for the property loop.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_sentences_survive_random_splits() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let mut sentences = Vec::new();
            let mut stream = Vec::new();
            for _ in 0..(1 + rng.below(5)) {
                let mut words = Vec::new();
                for _ in 0..(1 + rng.below(6)) {
                    // Lengths clustered around the prefix-size boundaries.
                    let len = match rng.below(4) {
                        0 => rng.below(0x7F + 3),
                        1 => 0x7D + rng.below(6),
                        2 => 0x3FFD + rng.below(6),
                        _ => 1 + rng.below(40),
                    } as usize;
                    let w: String = (0..len)
                        .map(|_| char::from(b'!' + rng.below(90) as u8))
                        .collect();
                    if !w.is_empty() {
                        words.push(w);
                    }
                }
                if words.is_empty() {
                    words.push("!done".to_string());
                }
                stream.extend(encode_sentence(&words).unwrap());
                sentences.push(words);
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut i = 0;
            while i < stream.len() {
                let max_step = if rng.below(3) == 0 { 4 } else { 600 };
                let step = 1 + rng.below(max_step) as usize;
                let end = (i + step).min(stream.len());
                d.feed(&stream[i..end]);
                i = end;
                while let Some(s) = d.next_sentence().unwrap() {
                    got.push(s);
                }
            }
            assert_eq!(got, sentences, "round {round}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let n = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let mut d = Decoder::with_limits(1024, 16);
            d.feed(&bytes);
            for _ in 0..n + 1 {
                match d.next_sentence() {
                    Ok(Some(s)) => {
                        let _ = Reply::parse(s);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reply_parsing() {
        let r = Reply::parse(words(&["!re", "=.id=*1", "=name=a=b", ".tag=7", "=empty="])).unwrap();
        assert_eq!(r.kind, ReplyKind::Re);
        assert_eq!(r.attrs["name"], "a=b");
        assert_eq!(r.attrs[".id"], "*1");
        assert_eq!(r.attrs["empty"], "");
        assert_eq!(r.tag.as_deref(), Some("7"));

        let r = Reply::parse(words(&["!trap", "=category=2", "=message=no such item"])).unwrap();
        assert_eq!(
            r.kind,
            ReplyKind::Trap {
                category: Some(2),
                message: "no such item".into()
            }
        );
        let r = Reply::parse(words(&["!fatal", "session terminated on request"])).unwrap();
        assert_eq!(
            r.kind,
            ReplyKind::Fatal("session terminated on request".into())
        );
        assert_eq!(
            Reply::parse(words(&["!empty"])).unwrap().kind,
            ReplyKind::Empty
        );
        let r = Reply::parse(words(&["!done", "=ret=abcd"])).unwrap();
        assert_eq!((r.kind, r.attrs["ret"].as_str()), (ReplyKind::Done, "abcd"));
        assert_eq!(
            Reply::parse(words(&["!bogus"])),
            Err(CodecError::UnknownReply("!bogus".into()))
        );
        assert_eq!(Reply::parse(vec![]), Err(CodecError::EmptySentence));
    }

    #[test]
    fn reply_words_round_trip() {
        for ws in [
            &["!re", "=.id=*A", "=user=bob", ".tag=3"][..],
            &["!trap", "=category=0", "=message=x"],
            &["!fatal", "not logged in"],
            &["!done"],
            &["!empty", ".tag=1"],
        ] {
            let r = Reply::parse(words(ws)).unwrap();
            assert_eq!(Reply::parse(r.to_words()).unwrap(), r);
        }
    }

    #[test]
    fn command_words_and_debug_hide_password() {
        let c = Command::new("/login")
            .attr("name", "admin")
            .attr("password", "s3cret")
            .proplist(&[".id", "name"])
            .query_eq("name", "bob");
        assert_eq!(
            c.words(),
            &[
                "/login",
                "=name=admin",
                "=password=s3cret",
                "=.proplist=.id,name",
                "?name=bob"
            ]
        );
        assert_eq!(c.path(), "/login");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("=name=admin"));
    }
}
