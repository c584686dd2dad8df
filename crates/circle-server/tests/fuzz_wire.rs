//! Property tests ("fuzzing" on stable Rust) for the edge's frame parser, `wire::parse_frame`, and the
//! step after it, `wire::to_command`. Whatever a client puts in a text frame, the server must neither
//! panic nor hang, and must answer exactly as docs/PROTOCOL.md §2 ("How a frame is read") says: the
//! step that refused the frame decides the error code, and the request id is echoed from step 4 on.
//!
//! Each property checks the parser against `expected`, an independent reading of that table built on
//! `serde_json::Value`. Inputs: arbitrary bytes, JSON-shaped text from a grammar (escapes, odd
//! numbers, duplicate keys, deep nesting), and random mutations of a valid frame of every type.
//!
//! `cargo test -p circle-server --test fuzz_wire` runs proptest's default 256 cases per property (a
//! second or two); a long run sets `PROPTEST_CASES`, e.g.
//! `PROPTEST_CASES=2000000 cargo test --release -p circle-server --test fuzz_wire` (docs/ROBUSTNESS.md).

use circle_protocol::{ClientMsg, ErrorCode, RequestId};
use circle_server::wire::{WireError, parse_frame, to_command};
use proptest::prelude::*;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The server's default frame limit (`[limits] max_frame_bytes`).
const MAX_FRAME: usize = 64 * 1024;
/// The server's default chat limit (`[rooms] chat_max_chars`).
const CHAT_MAX: usize = 2000;

/// What the table in docs/PROTOCOL.md §2 says the parser must answer for a frame it refuses at
/// steps 1–5: the code and the echoed id. `Ok((id, type))` means the frame reaches step 6 (its type
/// is known), where it either parses into a message of that type with that id, or is refused as
/// `bad_request` with that id.
///
/// "Parses as JSON" is serde_json's reading of the grammar, which (as RFC 8259 allows) accepts a lone
/// surrogate escape or a number out of `f64` range in a value nobody reads, and refuses nesting past
/// its depth limit. Only `id` and `type` are read as values here.
fn expected(
    text: &str,
    max: usize,
) -> Result<(Option<RequestId>, String), (Option<RequestId>, ErrorCode)> {
    if text.len() > max {
        return Err((None, ErrorCode::FrameTooLarge));
    }
    if !text.trim_start().starts_with('{') {
        return Err((None, ErrorCode::BadJson));
    }
    let Some(fields) = top_level(text) else {
        return Err((None, ErrorCode::BadJson));
    };
    let values = |k: &str| -> Vec<&Value> {
        fields
            .iter()
            .filter(|(key, _)| key == k)
            .filter_map(|(_, v)| v.as_ref())
            .collect()
    };
    let (ids, types) = (values("id"), values("type"));
    // A key given twice has no single value: such an id or type is unreadable.
    if ids.len() > 1 || types.len() > 1 {
        return Err((None, ErrorCode::BadJson));
    }
    let id = match ids.first() {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(RequestId::Str(s.clone())),
        Some(Value::Number(n)) if n.as_u64().is_some() => Some(RequestId::Num(n.as_u64().unwrap())),
        Some(_) => return Err((None, ErrorCode::BadJson)),
    };
    match types.first() {
        Some(Value::String(t)) if ClientMsg::TYPES.contains(&t.as_str()) => Ok((id, t.clone())),
        Some(Value::String(_)) => Err((id, ErrorCode::UnknownType)),
        _ => Err((id, ErrorCode::BadRequest)),
    }
}

/// The top level of a JSON object, in order and with duplicates kept (`serde_json::Value` keeps
/// only the last of a duplicated key): each key, with its value read for `id` and `type` only.
/// `None` when the text is not one JSON object.
fn top_level(text: &str) -> Option<Vec<(String, Option<Value>)>> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = Vec<(String, Option<Value>)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                let v = if k == "id" || k == "type" {
                    Some(map.next_value::<Value>()?)
                } else {
                    map.next_value::<IgnoredAny>()?;
                    None
                };
                fields.push((k, v));
            }
            Ok(fields)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = de.deserialize_map(Fields).ok()?;
    de.end().ok()?;
    Some(fields)
}

/// The `type` a message was parsed as, in its wire spelling.
fn type_of(msg: &ClientMsg) -> String {
    let v = serde_json::to_value(msg).expect("a client message encodes");
    v["type"]
        .as_str()
        .expect("every message has a type")
        .to_owned()
}

/// Checks one frame against the table; returns the message when it parsed.
fn check_frame(text: &str, max: usize) -> Result<Option<ClientMsg>, TestCaseError> {
    let want = expected(text, max);
    match (parse_frame(text, max), want) {
        (Ok(msg), Ok((id, ty))) => {
            prop_assert_eq!(msg.request_id(), id.as_ref(), "id of a parsed frame");
            prop_assert_eq!(type_of(&msg), ty);
            // What the server understood, sent again, is understood the same way.
            let again = serde_json::to_string(&msg).expect("a client message encodes");
            prop_assert_eq!(parse_frame(&again, usize::MAX).ok(), Some(msg.clone()));
            check_command(msg.clone())?;
            Ok(Some(msg))
        }
        (Err((id, e)), Ok((want_id, _))) => {
            // Step 6: a known type whose fields do not fit.
            prop_assert_eq!(e.code, ErrorCode::BadRequest, "{}: {}", text, e.message);
            prop_assert_eq!(id, want_id, "id echoed at step 6 for {}", text);
            prop_assert!(!e.message.contains(" at line "), "{}", e.message);
            prop_assert!(!e.message.is_empty());
            Ok(None)
        }
        (Err((id, e)), Err((want_id, want_code))) => {
            prop_assert_eq!(e.code, want_code, "{}: {}", text, e.message);
            prop_assert_eq!(id, want_id, "id echoed for {}", text);
            prop_assert!(!e.message.is_empty());
            Ok(None)
        }
        (Ok(msg), Err(want)) => Err(TestCaseError::fail(format!(
            "{text:?} parsed as {msg:?}, expected {want:?}"
        ))),
    }
}

/// `to_command` turns a parsed message into a room command or one of the errors the protocol lists
/// for it; it never panics.
fn check_command(msg: ClientMsg) -> Result<(), TestCaseError> {
    let signalling = matches!(
        msg,
        ClientMsg::MediaOffer { .. }
            | ClientMsg::MediaAnswer { .. }
            | ClientMsg::MediaCandidate { .. }
    );
    let session = matches!(msg, ClientMsg::Join { .. } | ClientMsg::Resume { .. });
    match to_command(msg, CHAT_MAX) {
        Ok(_) => prop_assert!(!signalling && !session),
        Err(WireError { code, .. }) => prop_assert!(
            matches!(
                code,
                ErrorCode::AlreadyJoined | ErrorCode::BadRequest | ErrorCode::InvalidText
            ),
            "{:?}",
            code
        ),
    }
    Ok(())
}

/// One valid frame of every client type, `ID` standing for the request id.
const VALID: &[&str] = &[
    r#"{"type":"join","id":ID,"protocol":1,"room":"r-1","name":"Sam","secret":"s","device":"d"}"#,
    r#"{"type":"resume","id":ID,"protocol":1,"room":"r-1","token":"t.o.k"}"#,
    r#"{"type":"leave","id":ID}"#,
    r#"{"type":"raise_hand","id":ID}"#,
    r#"{"type":"lower_hand","id":ID,"participant":"p1"}"#,
    r#"{"type":"set_self_mute","id":ID,"muted":true}"#,
    r#"{"type":"chat","id":ID,"text":"hello \u00e9\n\"there\""}"#,
    r#"{"type":"chat_private","id":ID,"text":"hi","to":"p2"}"#,
    r#"{"type":"admit","id":ID,"participant":"p1"}"#,
    r#"{"type":"admit_all","id":ID}"#,
    r#"{"type":"deny","id":ID,"participant":"p1"}"#,
    r#"{"type":"next_speaker","id":ID}"#,
    r#"{"type":"give_floor","id":ID,"participant":"p1"}"#,
    r#"{"type":"take_floor","id":ID}"#,
    r#"{"type":"move_hand","id":ID,"participant":"p1","position":2}"#,
    r#"{"type":"lower_all_hands","id":ID}"#,
    r#"{"type":"mute","id":ID,"participant":"p1"}"#,
    r#"{"type":"mute_all","id":ID}"#,
    r#"{"type":"allow_speak","id":ID,"participant":"p1"}"#,
    r#"{"type":"remove","id":ID,"participant":"p1"}"#,
    r#"{"type":"ban","id":ID,"participant":"p1"}"#,
    r#"{"type":"promote","id":ID,"participant":"p1"}"#,
    r#"{"type":"demote","id":ID,"participant":"p1"}"#,
    r#"{"type":"delete_chat","id":ID,"message":7}"#,
    r#"{"type":"set_chat_allowed","id":ID,"participant":"p1","allowed":false}"#,
    r#"{"type":"update_settings","id":ID,"settings":{"waiting_room":true,"share_secs":60,"locked":false}}"#,
    r#"{"type":"end_meeting","id":ID}"#,
    r#"{"type":"media_offer","id":ID,"sdp":"v=0\r\n"}"#,
    r#"{"type":"media_answer","id":ID,"sdp":"v=0\r\n"}"#,
    r#"{"type":"media_candidate","id":ID,"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdp_mid":"0","sdp_mline_index":0}}"#,
    r#"{"type":"react","id":ID,"reaction":"me_too"}"#,
    r#"{"type":"connection_quality","id":ID,"level":"poor"}"#,
];

/// A request id as a client might write it, valid or not.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9 _-]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("null".to_owned()),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("1e3".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("true".to_owned()),
        Just("[1]".to_owned()),
        Just("{}".to_owned()),
        Just("\"\\ud800\"".to_owned()),
    ]
}

/// One edit to a frame's bytes.
#[derive(Clone, Debug)]
enum Edit {
    /// Drop bytes `[at, at + len)`.
    Delete { at: usize, len: usize },
    /// Insert bytes at a place.
    Insert { at: usize, bytes: Vec<u8> },
    /// Overwrite one byte.
    Set { at: usize, byte: u8 },
    /// Keep only the first bytes.
    Truncate { at: usize },
    /// Repeat a slice right after itself.
    Duplicate { at: usize, len: usize },
    /// Insert a JSON-ish token (a quote, a brace, an escape...) where it hurts most.
    Token { at: usize, token: &'static str },
}

const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\\",
    "\\u",
    "\\ud83d",
    "\\udc00",
    "null",
    "true",
    "-0",
    "1e999",
    "\"type\":\"chat\",",
    "\"id\":1,",
    "\"id\":\"dup\",",
    "\"type\":5,",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "é",
    "😀",
];

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, 1..8usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (at, proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (at, any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        at.prop_map(|at| Edit::Truncate { at }),
        (at, 1..24usize).prop_map(|(at, len)| Edit::Duplicate { at, len }),
        (at, proptest::sample::select(TOKENS)).prop_map(|(at, token)| Edit::Token { at, token }),
    ]
}

fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let n = bytes.len();
    let place = |at: usize| if n == 0 { 0 } else { at % (n + 1) };
    match e {
        Edit::Delete { at, len } => {
            let a = place(*at).min(n);
            let b = (a + len).min(n);
            bytes.drain(a..b);
        }
        Edit::Insert { at, bytes: ins } => {
            let a = place(*at);
            bytes.splice(a..a, ins.iter().copied());
        }
        Edit::Set { at, byte } => {
            if n > 0 {
                bytes[at % n] = *byte;
            }
        }
        Edit::Truncate { at } => bytes.truncate(place(*at)),
        Edit::Duplicate { at, len } => {
            let a = place(*at).min(n);
            let b = (a + len).min(n);
            let slice = bytes[a..b].to_vec();
            bytes.splice(b..b, slice);
        }
        Edit::Token { at, token } => {
            let a = place(*at);
            bytes.splice(a..a, token.bytes());
        }
    }
}

/// JSON-shaped text from a small grammar: what a confused or hostile client might send.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?",
        json_string(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((key(), inner), 0..6).prop_map(|kv| object(&kv)),
        ]
    })
}

/// A JSON string literal, escapes included (valid and invalid ones).
fn json_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => "[a-z_ ]{1,6}",
            1 => proptest::sample::select(vec![
                "\\n", "\\\"", "\\\\", "\\/", "\\u0000", "\\u00e9", "\\ud83d\\ude00", "\\ud800",
                "\\udc00x", "\\x", "\t", "\u{7f}", "é", "\u{202e}",
            ])
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(|c| c.to_string()),
        ],
        0..5,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
}

/// A key: mostly one the protocol uses, so frames get past the first steps.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "id", "type", "text", "participant", "to", "muted", "position", "message", "allowed",
            "settings", "sdp", "candidate", "protocol", "room", "name", "token", "secret", "device",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{0,8}",
    ]
}

fn object(kv: &[(String, String)]) -> String {
    let fields: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

/// A top-level object: usually an id and a type (known or not), then random fields.
fn frame_object() -> impl Strategy<Value = String> {
    let type_value = prop_oneof![
        4 => proptest::sample::select(ClientMsg::TYPES).prop_map(|t| format!("{t:?}")),
        1 => json_text(),
    ];
    (
        proptest::option::of(id_text()),
        proptest::option::of(type_value),
        proptest::collection::vec((key(), json_text()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(id, ty, rest, id_last)| {
            let mut kv = Vec::new();
            if let Some(t) = ty {
                kv.push(("type".to_owned(), t));
            }
            kv.extend(rest);
            if let Some(id) = id {
                let field = ("id".to_owned(), id);
                if id_last {
                    kv.push(field)
                } else {
                    kv.insert(0, field)
                }
            }
            object(&kv)
        })
}

proptest! {
    /// Any bytes a websocket could carry as text.
    #[test]
    fn arbitrary_text_gets_the_documented_answer(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        check_frame(&text, MAX_FRAME)?;
    }

    /// Any string at all, including every Unicode scalar.
    #[test]
    fn arbitrary_strings_get_the_documented_answer(text in any::<String>()) {
        check_frame(&text, MAX_FRAME)?;
    }

    /// Objects built from the protocol's own keys and a JSON grammar with odd corners.
    #[test]
    fn json_shaped_garbage_gets_the_documented_answer(text in frame_object(), pad in "[ \t\r\n]{0,2}") {
        check_frame(&format!("{pad}{text}{pad}"), MAX_FRAME)?;
    }

    /// Any JSON value at all, not only objects.
    #[test]
    fn any_json_value_gets_the_documented_answer(text in json_text()) {
        check_frame(&text, MAX_FRAME)?;
    }

    /// A valid frame of every type, then a few random edits.
    #[test]
    fn mutated_valid_frames_get_the_documented_answer(
        template in proptest::sample::select(VALID),
        id in id_text(),
        edits in proptest::collection::vec(edit(), 0..4),
    ) {
        let mut bytes = template.replace("ID", &id).into_bytes();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let text = String::from_utf8_lossy(&bytes);
        check_frame(&text, MAX_FRAME)?;
    }

    /// The size limit is checked first and exactly, whatever the frame holds.
    #[test]
    fn the_size_limit_is_exact(template in proptest::sample::select(VALID), slack in 0..3usize) {
        let text = template.replace("ID", "1");
        let max = (text.len() + 1).saturating_sub(slack);
        check_frame(&text, max)?;
        if text.len() > max {
            let (id, e) = parse_frame(&text, max).unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::FrameTooLarge);
            prop_assert_eq!(id, None);
        }
    }

    /// Deep nesting inside an otherwise valid frame must be refused, not overflow the stack (which
    /// would abort the whole server, not just this connection).
    #[test]
    fn deep_nesting_is_refused_without_overflowing(depth in 1..30_000usize, open in proptest::sample::select(vec!["[", "{\"a\":"])) {
        let close = if open == "[" { "]" } else { "}" };
        let text = format!(
            r#"{{"type":"leave","id":1,"x":{}0{}}}"#,
            open.repeat(depth),
            close.repeat(depth)
        );
        check_frame(&text, usize::MAX)?;
    }
}

/// Every valid template parses as itself, with its id, for each kind of valid id.
#[test]
fn every_valid_frame_parses() {
    for t in VALID {
        for (id, want) in [
            ("7", Some(RequestId::Num(7))),
            ("\"a-1\"", Some(RequestId::Str("a-1".into()))),
            ("null", None),
        ] {
            let text = t.replace("ID", id);
            let msg = parse_frame(&text, MAX_FRAME).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(msg.request_id(), want.as_ref(), "{text}");
        }
    }
}
