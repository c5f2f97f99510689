//! `auth_user` + `auth_query`: users missing from auth_file are looked up on the server
//! by running `auth_query` as `auth_user` in the target database (or `auth_dbname`).

use protocol::pg::auth::StoredSecret;
use protocol::pg::sqlstate;

use super::LoginError;
use crate::cluster::Pooler;
use crate::server::quote_literal;

/// What `auth_query` said about a user.
#[derive(Debug)]
pub enum Lookup {
    /// No `auth_user` applies to this database.
    NotConfigured,
    /// The user exists; `None` when its password is NULL (expired or unset).
    Found(Option<StoredSecret>),
}

/// Runs `auth_query` for `user` logging in to `database`. No row means
/// `no such user`, as PgBouncer answers.
pub async fn lookup(pooler: &Pooler, database: &str, user: &str) -> Result<Lookup, LoginError> {
    let config = pooler.config();
    let g = &config.general;
    let Some(db) = config.database(database) else {
        return Ok(Lookup::NotConfigured);
    };
    let Some(auth_user) = db.auth_user.clone().or_else(|| g.auth_user.clone()) else {
        return Ok(Lookup::NotConfigured);
    };
    let query = db
        .auth_query
        .clone()
        .unwrap_or_else(|| g.auth_query.clone());
    let auth_database = db.auth_dbname.clone().or_else(|| g.auth_dbname.clone());
    let auth_database = auth_database.as_deref().unwrap_or(database);
    let entry = pooler.pool_for(auth_database, &auth_user, None)?;
    let failed = |e: String| {
        tracing::warn!("auth_query as {auth_user} in {auth_database} failed: {e}");
        LoginError::rejected(sqlstate::PROTOCOL_VIOLATION, "authentication query failed")
    };
    let mut server = entry
        .pool
        .checkout()
        .wait()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let sql = query.replace("$1", &quote_literal(user));
    let result = server.simple_query(&sql, g.max_packet_size as usize).await;
    let result = match result {
        Ok(result) => {
            server.checkin();
            result
        }
        Err(e) => return Err(failed(e.to_string())), // server dropped: state unknown
    };
    match result.rows.first() {
        None => Err(LoginError::rejected(
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            "no such user",
        )),
        Some(row) => {
            let secret = row
                .get(1)
                .cloned()
                .flatten()
                .map(|s| StoredSecret::parse(&s));
            Ok(Lookup::Found(secret))
        }
    }
}
