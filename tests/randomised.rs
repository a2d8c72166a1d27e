//! Randomised tests (proptest) of everything that parses outside input: the RouterOS
//! word decoder and reply parser, the RADIUS packet parser and the DM/CoA reply check,
//! RouterOS uptimes and config durations, capping attribute values, notification
//! templates and the module's configuration. Generated inputs plus mutations of the
//! seeds in tests/corpus/ (and of the pyrad captures in src/radius/testdata/).
//!
//! CI runs the default number of cases; `scripts/fuzz.sh` runs many more.
use proptest::prelude::*;
use rlm_rust::capping::{parse_limits, RawLimits};
use rlm_rust::config::{self, RawCapping, RawConfig, RawHooks};
use rlm_rust::notify::{Template, Vars};
use rlm_rust::radius::attrs::Attribute;
use rlm_rust::radius::packet::{verify_reply, Packet};
use rlm_rust::radius::Code;
use rlm_rust::routeros::codec::{decode_length, encode_length, encode_word, Decoder, Reply};
use rlm_rust::routeros::parse_uptime;
use std::path::Path;

fn corpus(kind: &str, ext: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let text = std::fs::read(&p).unwrap();
        out.push(if ext == "hex" { unhex(&text) } else { text });
    }
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn unhex(text: &[u8]) -> Vec<u8> {
    let digits: Vec<u8> = text.iter().copied().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn radius_seeds() -> Vec<Vec<u8>> {
    let mut seeds = corpus("radius", "hex");
    for f in ["pyrad_dm.hex", "pyrad_dm_ack.hex"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/radius/testdata")
            .join(f);
        seeds.push(unhex(&std::fs::read(p).unwrap()));
    }
    seeds
}

/// One mutation of `seed`: flip, set, insert or remove bytes, truncate, or splice
/// a copy of a part of it.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), 1..32usize)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn mutate(seed: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in ms {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match m {
            Mutation::Flip(i, b) if !v.is_empty() => {
                let i = at(*i, v.len());
                v[i] ^= b
            }
            Mutation::Set(i, b) if !v.is_empty() => {
                let i = at(*i, v.len());
                v[i] = *b
            }
            Mutation::Insert(i, bytes) => {
                let i = at(*i, v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove(i, n) if !v.is_empty() => {
                let i = at(*i, v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Truncate(n) => v.truncate(at(*n, v.len() + 1)),
            Mutation::Splice(from, to, n) if !v.is_empty() => {
                let from = at(*from, v.len());
                let part: Vec<u8> = v[from..(from + n).min(v.len())].to_vec();
                let to = at(*to, v.len() + 1);
                v.splice(to..to, part);
            }
            _ => {}
        }
    }
    v
}

/// Feeds `bytes` to a decoder in `chunks`-sized pieces and takes every sentence
/// until the first error; the stream must never make it panic or hold more than
/// (a bounded multiple of) what it was given.
fn decode_all(bytes: &[u8], chunk: usize) -> (Vec<Vec<String>>, bool) {
    let mut d = Decoder::with_limits(4096, 64);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        d.feed(piece);
        // A byte that is not UTF-8 is kept as one 4-byte char (names::decode).
        assert!(d.buffered() <= 4 * bytes.len());
        loop {
            match d.next_sentence() {
                Ok(Some(s)) => {
                    let _ = Reply::parse(s.clone());
                    out.push(s)
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// Parses and checks a datagram; what the parser accepts encodes again to a packet
/// that means the same.
fn parse_radius(bytes: &[u8]) {
    if let Ok(p) = Packet::decode(bytes) {
        let raw = p.encode_raw().unwrap();
        assert_eq!(Packet::decode(&raw).unwrap(), p);
    }
    let _ = verify_reply(bytes, &[7; 16], b"secret");
}

fn word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..40),
        prop::collection::vec(any::<u8>(), 120..140), // around the 1-byte/2-byte length edge
        "[=.!a-z0-9*]{1,30}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn routeros_lengths_round_trip_and_need_every_byte(len in prop_oneof![
        0u32..0x100, 0x3f00u32..0x4100, 0x1f_ff00u32..0x20_0100, 0x0fff_ff00u32..0x1000_0100, any::<u32>()
    ]) {
        let mut buf = Vec::new();
        encode_length(len, &mut buf);
        prop_assert_eq!(decode_length(&buf).unwrap(), Some((len, buf.len())));
        for cut in 0..buf.len() {
            prop_assert_eq!(decode_length(&buf[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn routeros_sentences_round_trip_in_any_chunking(
        sentences in prop::collection::vec(prop::collection::vec(word(), 1..8), 1..5),
        chunk in 1..64usize,
    ) {
        let mut bytes = Vec::new();
        for s in &sentences {
            for w in s {
                encode_word(w, &mut bytes).unwrap();
            }
            bytes.push(0);
        }
        let (got, failed) = decode_all(&bytes, chunk);
        prop_assert!(!failed);
        let want: Vec<Vec<String>> = sentences
            .iter()
            .map(|s| s.iter().map(|w| rlm_rust::names::decode(w)).collect())
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn routeros_decoder_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), chunk in 1..300usize) {
        decode_all(&bytes, chunk);
    }

    #[test]
    fn routeros_decoder_survives_mutated_replies(
        pick in any::<prop::sample::Index>(),
        ms in prop::collection::vec(mutation(), 1..6),
        chunk in 1..64usize,
    ) {
        let seeds = corpus("routeros", "hex");
        let seed = &seeds[pick.index(seeds.len())];
        decode_all(&mutate(seed, &ms), chunk);
    }

    #[test]
    fn routeros_words_over_the_limit_are_refused(extra in 1..100_000u32) {
        let mut d = Decoder::with_limits(4096, 64);
        let mut buf = Vec::new();
        encode_length(4096 + extra, &mut buf);
        d.feed(&buf);
        prop_assert!(d.next_sentence().is_err(), "a word over the limit must not be buffered");
    }

    #[test]
    fn radius_parser_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        parse_radius(&bytes);
    }

    #[test]
    fn radius_parser_and_reply_check_survive_mutated_packets(
        pick in any::<prop::sample::Index>(),
        ms in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = radius_seeds();
        parse_radius(&mutate(&seeds[pick.index(seeds.len())], &ms));
    }

    #[test]
    fn a_dm_reply_with_any_byte_changed_is_refused(
        code in prop::sample::select(vec![Code::DisconnectAck, Code::DisconnectNak, Code::CoaAck, Code::CoaNak]),
        id in any::<u8>(),
        request_auth in any::<[u8; 16]>(),
        attrs in prop::collection::vec((1..=255u8, prop::collection::vec(any::<u8>(), 0..30)), 0..6),
        secret in prop::collection::vec(any::<u8>(), 1..32),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let mut p = Packet::new(code, id);
        for (t, v) in attrs {
            if t != 80 {
                p.add(Attribute::new(t, v));
            }
        }
        p.add_message_authenticator();
        let raw = p.encode_reply(&request_auth, &secret).unwrap();
        prop_assert!(verify_reply(&raw, &request_auth, &secret).is_ok());
        let mut bad = raw.clone();
        let i = at.index(bad.len());
        bad[i] ^= flip;
        prop_assert!(verify_reply(&bad, &request_auth, &secret).is_err(), "byte {} changed, still accepted", i);
        let mut other = request_auth;
        other[0] ^= 1;
        prop_assert!(verify_reply(&raw, &other, &secret).is_err(), "accepted for another request");
        let mut wrong = secret.clone();
        wrong.push(b'x');
        prop_assert!(verify_reply(&raw, &request_auth, &wrong).is_err(), "accepted with another secret");
    }

    #[test]
    fn uptimes_of_any_form_add_up(w in 0..60u64, d in 0..7u64, h in 0..24u64, m in 0..60u64, s in 0..60u64, ms in 0..1000u64) {
        let total = w * 604_800 + d * 86_400 + h * 3600 + m * 60 + s;
        let mut units = String::new();
        for (n, u) in [(w, "w"), (d, "d"), (h, "h"), (m, "m"), (s, "s")] {
            if n > 0 {
                units += &format!("{n}{u}");
            }
        }
        if units.is_empty() {
            units = "0s".into();
        }
        prop_assert_eq!(parse_uptime(&units).unwrap(), total);
        prop_assert_eq!(parse_uptime(&format!("{units}{ms}ms")).unwrap_or(total), total);
        let clock = format!("{}{:02}:{:02}:{:02}", if w + d > 0 { format!("{}d", w * 7 + d) } else { String::new() }, h, m, s);
        prop_assert_eq!(parse_uptime(&clock).unwrap(), total);
    }

    #[test]
    fn uptime_and_durations_survive_any_text(text in "\\PC{0,24}", digits in "[0-9]{15,30}[smhdw]?") {
        let _ = parse_uptime(&text);
        let _ = parse_uptime(&digits);
        let _ = config::parse_duration(&text);
        // Too large is an error, never a wrapped number.
        if let Ok(v) = config::parse_duration(&digits) {
            let n: u128 = digits.trim_end_matches(char::is_alphabetic).parse().unwrap();
            prop_assert!(u128::from(v) >= n);
        }
    }

    #[test]
    fn durations_with_a_unit_are_exact(n in 0..10_000_000u64, unit in prop::sample::select(vec![("", 1u64), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)])) {
        prop_assert_eq!(config::parse_duration(&format!("{n}{}", unit.0)).unwrap(), n * unit.1);
    }

    #[test]
    fn capping_values_never_crash_and_numbers_are_kept(
        values in prop::collection::vec("\\PC{0,12}", 4),
        n in any::<u32>(),
    ) {
        let names = ["Rust-Capping-Traffic-Limit", "Rust-Capping-Uptime-Limit", "Rust-Capping-Traffic-Multiplier", "Rust-AutoTopup-Traffic-Amount"];
        let raw = RawLimits::from_pairs(names.iter().copied().zip(values.iter().map(String::as_str)));
        if let Err(e) = parse_limits("u", &raw, false) {
            prop_assert!(names.contains(&e.attribute.as_str()), "{}", e);
        }
        let raw = RawLimits::from_pairs([("Rust-Capping-Traffic-Limit", n.to_string().as_str())]);
        let want = if n == 0 { None } else { Some(u64::from(n)) };
        let got = parse_limits("u", &raw, false).unwrap().traffic_mb;
        prop_assert!(got == want || (n == 0 && got == Some(0)), "{} -> {:?}", n, got);
    }

    #[test]
    fn templates_parse_or_fail_cleanly_and_plain_text_renders_as_is(
        text in "[^\\[\\\\]{0,80}",
        noise in "\\PC{0,80}",
        pick in any::<prop::sample::Index>(),
        ms in prop::collection::vec(mutation(), 1..5),
    ) {
        prop_assert_eq!(Template::parse(&text).unwrap().render(&Vars::new()).text, text);
        if let Ok(t) = Template::parse(&noise) {
            t.render(&Vars::new());
        }
        let seeds = corpus("templates", "tt");
        let bytes = mutate(&seeds[pick.index(seeds.len())], &ms);
        if let Ok(t) = Template::parse(&String::from_utf8_lossy(&bytes)) {
            t.render(&Vars::new());
        }
    }

    #[test]
    fn config_values_fail_naming_an_option_and_never_show_a_secret(
        values in prop::collection::vec(prop_oneof![Just(None), "\\PC{0,16}".prop_map(Some)], 16),
        token in "[A-Za-z0-9]{12,20}",
    ) {
        let v = |i: usize| values[i].clone();
        let raw = RawConfig {
            db: Some(format!("host=db password={token} {}", v(0).unwrap_or_default())),
            timezone: v(1),
            stale_after: v(2),
            synchronous: v(3),
            background_interval: v(4),
            disconnect_prior_month: v(5),
            dm_timeout: v(6),
            dm_retries: v(7),
            disconnect_batch: v(8),
            bulk_disconnect: v(9),
            bulk_disconnect_delay: v(10),
            max_session_rate: v(11),
            events_keep: v(12),
            queue_lease: v(13),
            metrics_listen: v(14),
            metrics_token: Some(token.clone()),
            capping: RawCapping { period: v(15), ..Default::default() },
            hooks: RawHooks::default(),
        };
        match config::parse(&raw) {
            Ok(c) => prop_assert!(!c.db_shown.contains(&token)),
            Err(e) => {
                prop_assert!(!e.option.is_empty());
                prop_assert!(!e.to_string().contains(&token), "a secret in {}", e);
            }
        }
    }
}
