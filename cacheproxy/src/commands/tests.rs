//! Unit tests of the command table.

use bytes::Bytes;
use protocol::resp::{Request, Value};

use super::*;

fn bulk(text: &str) -> Value {
    Value::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn entry(name: &str, arity: i64, flags: &[&str], keys: (i64, i64, i64), subs: Vec<Value>) -> Value {
    Value::Array(vec![
        bulk(name),
        Value::Integer(arity),
        Value::Set(
            flags
                .iter()
                .map(|flag| Value::Simple(Bytes::copy_from_slice(flag.as_bytes())))
                .collect(),
        ),
        Value::Integer(keys.0),
        Value::Integer(keys.1),
        Value::Integer(keys.2),
        Value::Array(vec![]),
        Value::Array(vec![]),
        Value::Array(vec![]),
        Value::Array(subs),
    ])
}

#[test]
fn builtin_table_classifies_common_commands() {
    let table = CommandTable::builtin();
    assert!(!table.is_live());
    assert_eq!(table.get(b"GET").unwrap().kind(), CommandKind::Read);
    assert_eq!(table.get(b"blpop").unwrap().kind(), CommandKind::Blocking);
    assert_eq!(table.get(b"Eval").unwrap().kind(), CommandKind::Other);
    assert_eq!(table.get(b"subscribe").unwrap().kind(), CommandKind::PubSub);
    assert!(table.get(b"nosuchcommand").is_none());
    assert!(table.get(&[b'a'; 100]).is_none());
}

#[test]
fn live_reply_overrides_and_adds_subcommands() {
    let reply = Value::Array(vec![
        entry("get", 2, &["readonly", "fast"], (1, 1, 1), vec![]),
        entry("hset", -4, &["write", "denyoom", "fast"], (1, 1, 1), vec![]),
        entry(
            "client",
            -2,
            &[],
            (0, 0, 0),
            vec![
                entry("client|list", -2, &["admin", "noscript"], (0, 0, 0), vec![]),
                entry("client|getname", 2, &["noscript"], (0, 0, 0), vec![]),
            ],
        ),
        entry(
            "xinfo",
            -2,
            &[],
            (0, 0, 0),
            vec![entry("xinfo|stream", -3, &["readonly"], (2, 2, 1), vec![])],
        ),
    ]);
    let table = CommandTable::from_command_reply(&reply).unwrap();
    assert!(table.is_live());
    assert_eq!(table.get(b"HSET").unwrap().kind(), CommandKind::Write);
    let list = Request::from_args(&[b"CLIENT", b"LIST"]);
    assert_eq!(table.lookup(&list).unwrap().kind(), CommandKind::Admin);
    let unknown_sub = Request::from_args(&[b"client", b"frobnicate"]);
    assert!(table.lookup(&unknown_sub).unwrap().has_subcommands);
    let xinfo = Request::from_args(&[b"XINFO", b"stream", b"s"]);
    assert_eq!(table.lookup(&xinfo).unwrap().kind(), CommandKind::Read);
    assert_eq!(table.lookup(&xinfo).unwrap().keys.first, 2);
    // Built-in rows the reply did not mention survive.
    assert_eq!(table.get(b"blpop").unwrap().kind(), CommandKind::Blocking);
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    assert!(CommandTable::from_command_reply(&Value::Integer(3)).is_err());
    let short = Value::Array(vec![Value::Array(vec![bulk("get")])]);
    assert!(CommandTable::from_command_reply(&short).is_err());
    let bad_arity = Value::Array(vec![Value::Array(vec![
        bulk("get"),
        bulk("x"),
        Value::Array(vec![]),
        Value::Integer(1),
        Value::Integer(1),
        Value::Integer(1),
    ])]);
    assert!(CommandTable::from_command_reply(&bad_arity).is_err());
}

#[test]
fn special_commands_and_refusals() {
    assert_eq!(special(b"MULTI"), Some(Special::Multi));
    assert_eq!(
        special(b"psubscribe"),
        Some(Special::Subscribe(PubSubKind::Pattern))
    );
    assert!(matches!(special(b"SHUTDOWN"), Some(Special::Refused(_))));
    assert!(matches!(special(b"slaveof"), Some(Special::Refused(_))));
    assert_eq!(special(b"get"), None);
    let text = table::refusal(b"SHUTDOWN", "why");
    assert_eq!(
        text,
        "ERR command 'shutdown' is not allowed through cacheproxy: why"
    );
}
