//! Unit tests of the conversation model: phases, owed replies, errors and discards.

use super::*;

fn statement(id: u64) -> Arc<Statement> {
    Arc::new(Statement::new(id, bytes::Bytes::new()))
}

fn parse(id: u64) -> Pending {
    Pending::Forward(Expect::Parse {
        named: Some(Box::new(NamedParse {
            statement: statement(id),
            client_name: Arc::from(&b"s"[..]),
            is_on_server: false,
        })),
    })
}

#[test]
fn a_synthetic_reply_waits_for_the_replies_ahead_of_it() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.push(Pending::Forward(Expect::Bind { statement: None }), &mut out);
    exchange.push(Pending::Synthetic(Synthetic::CloseComplete), &mut out);
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    assert!(out.is_empty());
    exchange.complete_head(&mut out);
    assert_eq!(&out[..], b"3\0\0\0\x04");
    assert_eq!(exchange.head(), Some(&Pending::Forward(Expect::Sync)));
}

#[test]
fn a_synthetic_reply_with_nothing_ahead_goes_out_at_once() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.push(Pending::Synthetic(Synthetic::ParseComplete), &mut out);
    assert_eq!(&out[..], b"1\0\0\0\x04");
    assert!(exchange.is_idle());
}

#[test]
fn an_error_skips_to_sync_and_drops_owed_synthetic_replies() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.push(
        Pending::InjectedParse {
            statement: statement(7),
        },
        &mut out,
    );
    exchange.push(Pending::Forward(Expect::Bind { statement: None }), &mut out);
    exchange.push(parse(8), &mut out);
    exchange.push(Pending::Synthetic(Synthetic::ParseComplete), &mut out);
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    let failed = exchange.on_error();
    assert_eq!(failed.statements, vec![7, 8]);
    assert_eq!(failed.client_names.len(), 1);
    assert_eq!(exchange.head(), Some(&Pending::Forward(Expect::Sync)));
    // A Sync is already on its way: what the client sends now is not discarded.
    assert!(!exchange.is_discarding());
    exchange.complete_head(&mut out);
    assert!(out.is_empty());
    assert!(exchange.is_idle());
}

#[test]
fn after_an_error_the_server_discards_until_the_client_sends_sync() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_extended_forwarded();
    exchange.push(Pending::Forward(Expect::Execute), &mut out);
    exchange.on_error();
    assert!(exchange.is_discarding());
    assert_eq!(exchange.on_sync_forwarded(), Some(Expect::Sync));
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    assert!(!exchange.is_discarding());
    exchange.complete_head(&mut out);
    assert!(exchange.is_settled());
}

#[test]
fn a_failed_commit_at_sync_or_a_failed_simple_query_skips_nothing() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    exchange.push(Pending::Forward(Expect::Bind { statement: None }), &mut out);
    assert!(exchange.on_error().statements.is_empty());
    assert_eq!(exchange.len(), 2);
    assert!(!exchange.is_discarding());
    exchange.complete_head(&mut out);
    exchange.complete_head(&mut out);
    exchange.push(Pending::Forward(Expect::Query), &mut out);
    exchange.on_error();
    assert!(!exchange.is_discarding());
    assert_eq!(exchange.len(), 1);
}

#[test]
fn flush_keeps_a_batch_open_until_its_sync() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_extended_forwarded();
    exchange.push(parse(1), &mut out);
    exchange.complete_head(&mut out);
    assert!(exchange.is_idle());
    assert!(
        !exchange.is_settled(),
        "the implicit transaction is open until Sync"
    );
    assert_eq!(exchange.phase(), Phase::Batch);
    exchange.on_sync_forwarded();
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    exchange.complete_head(&mut out);
    assert!(exchange.is_settled());
}

#[test]
fn syncs_sent_before_an_extended_copy_in_started_get_no_reply() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_extended_forwarded();
    exchange.push(Pending::Forward(Expect::Execute), &mut out);
    exchange.on_sync_forwarded();
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    exchange.on_copy_in_started();
    assert_eq!(exchange.len(), 1);
    assert_eq!(exchange.phase(), Phase::CopyIn { is_extended: true });
    assert_eq!(exchange.on_sync_forwarded(), None, "ignored during COPY");
    exchange.on_copy_end_forwarded(&mut out);
    exchange.complete_head(&mut out);
    assert!(
        !exchange.is_settled(),
        "the COPY's batch still needs its Sync"
    );
    assert_eq!(exchange.on_sync_forwarded(), Some(Expect::Sync));
    exchange.push(Pending::Forward(Expect::Sync), &mut out);
    exchange.complete_head(&mut out);
    assert!(exchange.is_settled());
}

#[test]
fn a_simple_copy_in_ends_with_its_query() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_query_forwarded();
    exchange.push(Pending::Forward(Expect::Query), &mut out);
    exchange.on_copy_in_started();
    assert_eq!(exchange.phase(), Phase::CopyIn { is_extended: false });
    exchange.on_copy_end_forwarded(&mut out);
    exchange.complete_head(&mut out);
    assert!(exchange.is_settled());
}

#[test]
fn an_error_during_copy_in_ends_the_copy() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_extended_forwarded();
    exchange.push(Pending::Forward(Expect::Execute), &mut out);
    exchange.on_copy_in_started();
    exchange.on_error();
    assert_eq!(exchange.phase(), Phase::Batch);
    assert!(exchange.is_discarding());
}

#[test]
fn a_pipelined_copy_ignores_only_the_syncs_before_its_copy_end() {
    // Parse/Bind/Execute(COPY) Sync CopyData CopyDone Sync, in one write.
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_extended_forwarded();
    exchange.push(Pending::Forward(Expect::Execute), &mut out);
    let first = exchange.on_sync_forwarded().unwrap();
    exchange.push(Pending::Forward(first), &mut out);
    exchange.on_copy_end_forwarded(&mut out);
    let second = exchange.on_sync_forwarded().unwrap();
    exchange.push(Pending::Forward(second), &mut out);
    exchange.on_copy_in_started();
    assert_eq!(exchange.len(), 2, "Execute and the Sync after CopyDone");
    exchange.complete_head(&mut out);
    assert_eq!(exchange.head(), Some(&Pending::Forward(Expect::Sync)));
    exchange.complete_head(&mut out);
    assert!(exchange.is_settled());
}

#[test]
fn a_copy_end_without_a_copy_is_ignored() {
    let mut exchange = Exchange::default();
    let mut out = BytesMut::new();
    exchange.on_query_forwarded();
    exchange.push(Pending::Forward(Expect::Query), &mut out);
    exchange.on_copy_end_forwarded(&mut out);
    exchange.complete_head(&mut out);
    assert!(exchange.is_settled());
    exchange.on_copy_end_forwarded(&mut out);
    assert!(exchange.is_settled());
}
