//! Unit tests of the command ids, reply classification and the rendered text.

use super::*;

#[test]
fn command_ids_ignore_case_and_fall_back_to_other() {
    assert_eq!(CommandId::of(b"GET").label(), "get");
    assert_eq!(CommandId::of(b"hGetAll").label(), "hgetall");
    assert_eq!(CommandId::of(b"OBJECT").label(), "other");
    assert_eq!(CommandId::of(b"").label(), "other");
    assert_eq!(CommandId::other().label(), "other");
}

#[test]
fn single_reads_count_nil_as_a_miss() {
    let metrics = Metrics::default();
    let get = CommandId::of(b"get");
    metrics.reply_started(get, b"$-1\r\n");
    metrics.reply_started(get, b"_\r\n");
    metrics.reply_started(get, b"$3\r\nabc\r\n");
    metrics.reply_started(CommandId::of(b"set"), b"$-1\r\n");
    let counters = &metrics.commands[get.0];
    assert_eq!(counters.hits.load(Ordering::Relaxed), 1);
    assert_eq!(counters.misses.load(Ordering::Relaxed), 2);
}

#[test]
fn multi_reads_count_each_element() {
    let metrics = Metrics::default();
    let mget = CommandId::of(b"MGET");
    metrics.reply_started(mget, b"*4\r\n$1\r\na\r\n$-1\r\n_\r\n$2\r\n\r\n\r\n");
    let counters = &metrics.commands[mget.0];
    assert_eq!(counters.hits.load(Ordering::Relaxed), 2);
    assert_eq!(counters.misses.load(Ordering::Relaxed), 2);
    // A truncated chunk counts what it holds and never panics.
    assert_eq!(count_array_elements(b"*3\r\n$-1\r\n$10\r\nab"), (1, 1));
    assert_eq!(count_array_elements(b"*99999999999\r\n"), (0, 0));
    assert_eq!(count_array_elements(b"*x\r\n"), (0, 0));
    assert_eq!(count_array_elements(b""), (0, 0));
}

#[test]
fn error_replies_count_by_prefix() {
    let metrics = Metrics::default();
    metrics.reply_started(CommandId::of(b"get"), b"-WRONGTYPE Operation\r\n");
    metrics.reply_started(CommandId::of(b"get"), b"-ERR x\r\n");
    metrics.reply_started(CommandId::of(b"get"), b"-WEIRD\r\n");
    metrics.reply_started(CommandId::of(b"get"), b"-\r\n");
    let read = |index: usize| metrics.error_replies[index].load(Ordering::Relaxed);
    assert_eq!(read(0), 1);
    assert_eq!(read(1), 1);
    assert_eq!(read(ERROR_PREFIXES.len()), 2);
}

#[test]
fn latency_lands_in_the_right_bucket() {
    let histogram = LatencyHistogram::default();
    histogram.observe(Duration::from_micros(40));
    histogram.observe(Duration::from_millis(3));
    histogram.observe(Duration::from_secs(60));
    let proto = histogram.to_proto();
    assert_eq!(proto.get_sample_count(), 3);
    let cumulative: Vec<u64> = proto
        .get_bucket()
        .iter()
        .map(|bucket| bucket.cumulative_count())
        .collect();
    assert_eq!(cumulative.first(), Some(&1));
    assert_eq!(cumulative.get(6), Some(&2));
    assert_eq!(cumulative.last(), Some(&2));
}
