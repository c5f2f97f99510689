//! Helpers for the admin console and `/metrics` tests: console rows by column name,
//! RowDescription decoding for raw clients, and a Prometheus text-format parser.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::SimpleQueryMessage;

use super::error_message;
use super::raw::Message;

/// A console row by column name.
pub type Row = BTreeMap<String, Option<String>>;

/// Runs a console command and returns its rows by column name.
pub async fn show(client: &tokio_postgres::Client, sql: &str) -> Vec<Row> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", error_message(&e)));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), row.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

pub fn field<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name)
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
        .as_deref()
        .unwrap_or("")
}

pub fn int(row: &Row, name: &str) -> i64 {
    field(row, name)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {row:?}"))
}

pub fn pool_row<'a>(rows: &'a [Row], database: &str, user: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| field(r, "database") == database && field(r, "user") == user)
}

pub async fn console_error(client: &tokio_postgres::Client, sql: &str) -> (String, Option<String>) {
    let err = client
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} should fail"));
    (error_message(&err), super::error_code(&err))
}

/// (type OID, type size) PgBouncer's pktbuf_write_RowDescription sends per letter.
pub fn letter_type(letter: char) -> (u32, i16) {
    match letter {
        's' | 'T' => (25, -1),
        'i' => (23, 4),
        'q' => (20, 8),
        'N' => (1700, -1),
        'b' => (17, -1),
        other => panic!("unknown type letter {other}"),
    }
}

/// (name, type OID, type size) of every column of the RowDescription in `messages`.
pub fn row_description(messages: &[Message]) -> Vec<(String, u32, i16)> {
    let m = messages
        .iter()
        .find(|m| m.tag == b'T')
        .unwrap_or_else(|| panic!("no RowDescription in {}", super::raw::tags(messages)));
    let body = &m.body;
    let count = u16::from_be_bytes([body[0], body[1]]);
    let mut pos = 2;
    let mut columns = Vec::new();
    for _ in 0..count {
        let end = pos + body[pos..].iter().position(|b| *b == 0).unwrap();
        let name = String::from_utf8_lossy(&body[pos..end]).into_owned();
        pos = end + 1;
        let oid = u32::from_be_bytes([body[pos + 6], body[pos + 7], body[pos + 8], body[pos + 9]]);
        let size = i16::from_be_bytes([body[pos + 10], body[pos + 11]]);
        pos += 18;
        columns.push((name, oid, size));
    }
    columns
}

// Prometheus text format: a small parser that checks every line.

/// Series by `name{sorted labels}`.
pub type Series = HashMap<String, f64>;

pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

/// Parses the text exposition format; panics on a malformed line.
pub fn parse_prometheus(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() == Some(&"TYPE") {
                assert!(
                    matches!(
                        words.get(2).copied(),
                        Some("counter" | "gauge" | "histogram" | "summary" | "untyped")
                    ),
                    "bad TYPE line: {line}"
                );
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        let mut rest = &line[name_end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut key = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(i + 1);
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(
                            chars.next().map(|(_, c)| c),
                            Some('"'),
                            "bad label in {line}"
                        );
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => panic!("bad escape in {line}"),
                                },
                                Some('"') => break,
                                Some(other) => value.push(other),
                                None => panic!("unterminated label value in {line}"),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            }
            rest = &after[end.unwrap_or_else(|| panic!("unterminated labels in {line}"))..];
        }
        let value_text = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        series.insert(series_key(name, &pairs), value);
    }
    series
}

pub fn metric(series: &Series, name: &str, labels: &[(&str, &str)]) -> f64 {
    *series
        .get(&series_key(name, labels))
        .unwrap_or_else(|| panic!("no series {}", series_key(name, labels)))
}

// ---------------------------------------------------------------------------------
// Column lists of PgBouncer master, hard-coded from its src/admin.c and src/stats.c.
// Type letters: s text, i int4, q int8, N numeric, T timestamp-as-text, b bytea.

pub const SOCKET_COLUMNS: &str = "type,user,database,replication,state,addr,port,local_addr,local_port,connect_time,request_time,wait,wait_us,close_needed,ptr,link,remote_pid,tls,application_name,prepared_statements,id";
pub const SOCKET_TYPES: &str = "ssssssisiTTiiississii";
pub const DEBUG_COLUMNS: &str =
    ",recv_pos,pkt_pos,pkt_remain,send_pos,send_remain,pkt_avail,send_avail";

/// `(SHOW argument, column names, type letters)` of every SHOW of PgBouncer master.
pub fn pgbouncer_columns() -> Vec<(&'static str, String, String)> {
    let stats_names = "database,total_server_assignment_count,total_xact_count,total_query_count,total_received,total_sent,total_xact_time,total_query_time,total_wait_time,total_client_parse_count,total_server_parse_count,total_bind_count,total_client_login_count,avg_server_assignment_count,avg_xact_count,avg_query_count,avg_recv,avg_sent,avg_xact_time,avg_query_time,avg_wait_time,avg_client_parse_count,avg_server_parse_count,avg_bind_count,avg_client_login_count";
    let totals_names = "database,server_assignment_count,xact_count,query_count,bytes_received,bytes_sent,xact_time,query_time,wait_time,client_parse_count,server_parse_count,bind_count,client_login_count";
    let averages_names = "database,server_assignment_count,xact_count,query_count,bytes_received,bytes_sent,xact_time,query_time,wait_time,avg_client_parse_count,avg_server_parse_count,avg_bind_count,avg_client_login_count";
    let n = |count: usize| format!("s{}", "N".repeat(count));
    vec![
        ("POOLS", "database,user,cl_active,cl_waiting,cl_active_cancel_req,cl_waiting_cancel_req,sv_active,sv_active_cancel,sv_being_canceled,sv_idle,sv_used,sv_tested,sv_login,maxwait,maxwait_us,pool_mode,load_balance_hosts".into(), "ssiiiiiiiiiiiiiss".into()),
        ("CLIENTS", SOCKET_COLUMNS.into(), SOCKET_TYPES.into()),
        ("SERVERS", SOCKET_COLUMNS.into(), SOCKET_TYPES.into()),
        ("SOCKETS", format!("{SOCKET_COLUMNS}{DEBUG_COLUMNS}"), format!("{SOCKET_TYPES}iiiiiii")),
        ("ACTIVE_SOCKETS", format!("{SOCKET_COLUMNS}{DEBUG_COLUMNS}"), format!("{SOCKET_TYPES}iiiiiii")),
        ("STATS", stats_names.into(), n(24)),
        ("STATS_TOTALS", totals_names.into(), n(12)),
        ("STATS_AVERAGES", averages_names.into(), n(12)),
        ("TOTALS", "name,value".into(), "sN".into()),
        ("DATABASES", "name,host,port,database,force_user,pool_size,min_pool_size,reserve_pool_size,server_lifetime,pool_mode,load_balance_hosts,max_connections,current_connections,max_client_connections,current_client_connections,paused,disabled".into(), "ssissiiiissiiiiii".into()),
        ("USERS", "name,pool_size,reserve_pool_size,pool_mode,max_user_connections,current_connections,max_user_client_connections,current_client_connections".into(), "ssssiiii".into()),
        ("CONFIG", "key,value,default,changeable".into(), "ssss".into()),
        ("LISTS", "list,items".into(), "si".into()),
        ("VERSION", "version".into(), "s".into()),
        ("STATE", "key,value".into(), "ss".into()),
        ("PEERS", "peer_id,host,port,pool_size".into(), "isii".into()),
        ("PEER_POOLS", "peer_id,cl_active_cancel_req,cl_waiting_cancel_req,sv_active_cancel,sv_login".into(), "iiiii".into()),
        ("MEM", "name,size,used,free,memtotal".into(), "siiii".into()),
        ("DNS_HOSTS", "hostname,ttl,addrs".into(), "sqs".into()),
        ("DNS_ZONES", "zonename,serial,count".into(), "sqi".into()),
        ("FDS", "fd,task,user,database,addr,port,cancel,link,client_encoding,std_strings,datestyle,timezone,password,scram_client_key,scram_server_key".into(), "issssiqisssssbb".into()),
    ]
}

/// The console tests' auth file: a pool user, an admin, a stats user and a stranger.
pub const USERLIST: &str = "\"postgres\" \"pgpass\"\n\"admin\" \"adminpass\"\n\"stats\" \"statspass\"\n\"nobody\" \"nobodypass\"\n";

/// A lone PostgreSQL primary for the console tests.
pub fn cluster() -> integration_tests::PgCluster {
    integration_tests::PgCluster::start(integration_tests::PgOptions::default()).unwrap()
}

/// `[pgbouncer]` lines of the console tests (admin/stats users, /metrics on a free port)
/// followed by `extra`.
pub fn general(extra: &str) -> String {
    let port = integration_tests::ports::free_port().unwrap();
    format!(
        "auth_type = md5\nadmin_users = admin\nstats_users = stats\nmetrics_addr = 127.0.0.1:{port}\n{extra}"
    )
}
