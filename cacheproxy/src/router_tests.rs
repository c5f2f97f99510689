//! Table-driven unit tests of the router.

use protocol::resp::Request;

use super::*;
use crate::commands::CommandTable;

fn request(text: &str) -> Request {
    let args: Vec<&[u8]> = text.split(' ').map(str::as_bytes).collect();
    Request::from_args(&args)
}

fn context(read_from: ReadFrom, has_replica: bool, is_pinned: bool) -> RouteContext {
    RouteContext {
        is_pinned,
        read_from,
        has_replica,
        enable_monitor: false,
    }
}

fn target(text: &str, context: &RouteContext) -> Target {
    route(&request(text), &CommandTable::builtin(), context).target
}

#[test]
fn unpinned_routing_table() {
    let master = context(ReadFrom::Master, true, false);
    let cases: &[(&str, Target)] = &[
        ("GET k", Target::Master),
        ("SET k v", Target::Master),
        ("NOSUCHCOMMAND x", Target::Master),
        ("PING", Target::Local(LocalCommand::Ping)),
        ("ECHO hi", Target::Local(LocalCommand::Echo)),
        ("QUIT", Target::Local(LocalCommand::Quit)),
        ("HELLO 3", Target::Local(LocalCommand::Hello)),
        ("AUTH pw", Target::Local(LocalCommand::Auth)),
        ("SELECT 0", Target::Local(LocalCommand::SelectZero)),
        ("SELECT 1", Target::Pinned(PinCause::Select)),
        ("MULTI", Target::Pinned(PinCause::Transaction)),
        ("WATCH k", Target::Pinned(PinCause::Transaction)),
        ("EXEC", Target::Local(LocalCommand::ExecWithoutMulti)),
        ("UNWATCH", Target::Local(LocalCommand::Unwatch)),
        ("BLPOP q 0", Target::Pinned(PinCause::Blocking)),
        ("WAIT 1 0", Target::Pinned(PinCause::Blocking)),
        (
            "XREAD COUNT 1 BLOCK 0 STREAMS s $",
            Target::Pinned(PinCause::Blocking),
        ),
        ("XREAD COUNT 1 STREAMS block 0", Target::Master),
        ("SUBSCRIBE a b", Target::Pinned(PinCause::Subscribe)),
        (
            "PUNSUBSCRIBE",
            Target::Local(LocalCommand::UnsubscribeNone(PubSubKind::Pattern)),
        ),
        ("PUBLISH ch m", Target::Master),
        (
            "CLIENT SETNAME app",
            Target::Local(LocalCommand::ClientSetName),
        ),
        ("CLIENT TRACKING on", Target::Pinned(PinCause::Tracking)),
        (
            "CLIENT TRACKING off",
            Target::Local(LocalCommand::ClientTrackingOff),
        ),
        ("CLIENT LIST", Target::Client(ClientCommand::List)),
        ("INFO server", Target::Info),
        ("EVAL x 0", Target::Master),
    ];
    for (text, expected) in cases {
        assert_eq!(&target(text, &master), expected, "{text}");
    }
}

#[test]
fn refusals_name_the_command() {
    let master = context(ReadFrom::Master, false, false);
    for text in [
        "SHUTDOWN",
        "replicaof no one",
        "MONITOR",
        "DEBUG sleep 1",
        "CLUSTER info",
    ] {
        let Target::Reject(line) = target(text, &master) else {
            panic!("{text} must be refused");
        };
        let name = text.split(' ').next().unwrap().to_ascii_lowercase();
        assert!(line.starts_with("ERR command '"), "{line}");
        assert!(line.contains(&name), "{line} names {name}");
    }
    let Target::Reject(line) = target("CLIENT TRACKING on REDIRECT 5", &master) else {
        panic!("REDIRECT must be refused");
    };
    assert!(line.contains("client|tracking"));
    assert_eq!(
        target("SELECT", &master),
        Target::Reject("ERR wrong number of arguments for 'select' command".to_owned())
    );
}

#[test]
fn read_policy() {
    let replica = context(ReadFrom::Replica, true, false);
    let preferred_without = context(ReadFrom::ReplicaPreferred, false, false);
    let replica_without = context(ReadFrom::Replica, false, false);
    assert_eq!(target("GET k", &replica), Target::Replica);
    assert_eq!(target("SET k v", &replica), Target::Master);
    assert_eq!(target("EVAL x 0", &replica), Target::Master);
    assert_eq!(target("EVAL_RO x 0", &replica), Target::Replica);
    assert_eq!(
        target("BLPOP q 0", &replica),
        Target::Pinned(PinCause::Blocking)
    );
    assert_eq!(target("GET k", &preferred_without), Target::Master);
    assert!(matches!(
        target("GET k", &replica_without),
        Target::Reject(_)
    ));
    let routed = route(&request("GET k"), &CommandTable::builtin(), &replica);
    assert!(routed.is_read_only);
    let routed = route(&request("INCR k"), &CommandTable::builtin(), &replica);
    assert!(!routed.is_read_only);
}

#[test]
fn pinned_clients_send_everything_to_their_connection() {
    let pinned = context(ReadFrom::Replica, true, true);
    for text in [
        "GET k",
        "PING",
        "EXEC",
        "SELECT 0",
        "UNSUBSCRIBE",
        "INFO",
        "CLIENT TRACKING off",
        "EVAL x 0",
    ] {
        assert_eq!(
            target(text, &pinned),
            Target::Pinned(PinCause::Session),
            "{text}"
        );
    }
    assert_eq!(target("QUIT", &pinned), Target::Local(LocalCommand::Quit));
    assert_eq!(target("RESET", &pinned), Target::Local(LocalCommand::Reset));
    assert_eq!(
        target("CLIENT GETNAME", &pinned),
        Target::Local(LocalCommand::ClientGetName)
    );
    assert!(matches!(target("SHUTDOWN", &pinned), Target::Reject(_)));
    assert_eq!(target("SCRIPT KILL", &pinned), Target::Control);
    assert_eq!(
        target("CLIENT UNBLOCK 7", &pinned),
        Target::Client(ClientCommand::Unblock)
    );
    let routed = route(&request("GET k"), &CommandTable::builtin(), &pinned);
    assert!(!routed.is_read_only, "pinned commands are never retried");
}

#[test]
fn connection_scoped_commands_have_a_stated_home() {
    let master = context(ReadFrom::Master, false, false);
    for (text, expected) in [
        ("SCRIPT KILL", Target::Control),
        ("function kill", Target::Control),
        ("SCRIPT FLUSH", Target::Master),
        ("FUNCTION LIST", Target::Master),
        ("CLIENT ID", Target::Client(ClientCommand::Id)),
        ("CLIENT INFO", Target::Client(ClientCommand::Info)),
        (
            "CLIENT LIST TYPE normal",
            Target::Client(ClientCommand::List),
        ),
        ("CLIENT KILL ID 3", Target::Client(ClientCommand::Kill)),
        (
            "CLIENT UNBLOCK 3 ERROR",
            Target::Client(ClientCommand::Unblock),
        ),
        ("CLIENT NO-EVICT on", Target::Client(ClientCommand::NoEvict)),
        ("CLIENT REPLY OFF", Target::Client(ClientCommand::Reply)),
        ("CLIENT GETREDIR", Target::Client(ClientCommand::GetRedir)),
        (
            "CLIENT TRACKINGINFO",
            Target::Client(ClientCommand::TrackingInfo),
        ),
        ("CLIENT NO-TOUCH on", Target::Pinned(PinCause::NoTouch)),
        ("CLIENT NO-TOUCH off", Target::Master),
        ("CLIENT PAUSE 10", Target::Master),
        ("WAIT 1 100", Target::Pinned(PinCause::Blocking)),
    ] {
        assert_eq!(target(text, &master), expected, "{text}");
    }
}
