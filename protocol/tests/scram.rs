//! SCRAM-SHA-256 and MD5 auth: RFC 7677 vector, our client against our server, pass-through, postgres-protocol cross-checks, and no-panic fuzzing of every step.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use protocol::pg::auth::{AuthError, StoredSecret, md5_salted_response, md5_secret, md5_verify};
use protocol::pg::scram::{
    MAX_ITERATIONS, ScramClient, ScramCredentials, ScramKeys, ScramSecret, ScramServer,
};

const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
     p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_secret() -> ScramSecret {
    let salt = STANDARD.decode(RFC_SALT).unwrap();
    ScramSecret::from_password("pencil", &salt, 4096)
}

fn password(pw: &str) -> ScramCredentials {
    ScramCredentials::Password(pw.to_owned())
}

/// Runs a whole exchange; returns the keys the server recovered.
fn exchange(client: &mut ScramClient, server: &mut ScramServer) -> Result<ScramKeys, AuthError> {
    let server_first = server.handle_client_first(&client.client_first())?;
    let client_final = client.handle_server_first(&server_first)?;
    let (server_final, keys) = server.handle_client_final(&client_final)?;
    client.verify_server_final(&server_final)?;
    Ok(keys)
}

#[test]
fn rfc7677_vector_client() {
    let mut client =
        ScramClient::with_nonce(password("pencil"), RFC_CLIENT_NONCE).with_user_name("user");
    assert_eq!(client.client_first(), RFC_CLIENT_FIRST.as_bytes());
    let client_final = client
        .handle_server_first(RFC_SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
    client
        .verify_server_final(RFC_SERVER_FINAL.as_bytes())
        .unwrap();
}

#[test]
fn rfc7677_vector_server_and_keys_client() {
    let mut server = ScramServer::with_nonce(rfc_secret(), RFC_SERVER_NONCE);
    let server_first = server
        .handle_client_first(RFC_CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(server_first).unwrap(), RFC_SERVER_FIRST);
    let (server_final, keys) = server
        .handle_client_final(RFC_CLIENT_FINAL.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(server_final).unwrap(), RFC_SERVER_FINAL);
    assert_eq!(keys.stored_key(), rfc_secret().stored_key);
    assert_eq!(keys.to_secret(), rfc_secret());

    // The recovered keys reproduce the very same proof without the password.
    let keys = ScramCredentials::Keys(keys);
    let mut client = ScramClient::with_nonce(keys, RFC_CLIENT_NONCE).with_user_name("user");
    let client_final = client
        .handle_server_first(RFC_SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
    client
        .verify_server_final(RFC_SERVER_FINAL.as_bytes())
        .unwrap();
}

#[test]
fn secret_round_trips_and_rejects_bad_fields() {
    let secret = ScramSecret::from_password("x", b"salt", 1);
    let good = secret.encode();
    assert_eq!(ScramSecret::parse(&good), Ok(secret));
    let bad_count = |count: &str| ScramSecret::parse(&good.replace("$1:", &format!("${count}:")));
    assert!(matches!(
        bad_count("0"),
        Err(AuthError::IterationCount { count: 0, .. })
    ));
    assert!(matches!(
        bad_count("2147483648"),
        Err(AuthError::IterationCount { .. })
    ));
    assert!(bad_count("2147483647").is_ok());
    for bad in ["+1", "", "1 ", "0x10"] {
        assert!(
            matches!(bad_count(bad), Err(AuthError::Malformed { .. })),
            "{bad:?}"
        );
    }
    for bad in [
        good.replace("SCRAM-SHA-256$", "SCRAM-SHA-1$"),
        good.replace(':', ";"),
        format!("{good}AAAA"),
        format!("{good}$"),
        "SCRAM-SHA-256$4096:$AAAA:BBBB".to_owned(),
    ] {
        assert!(ScramSecret::parse(&bad).is_err(), "{bad}");
        assert_eq!(StoredSecret::parse(&bad).kind(), "plain");
    }
}

#[test]
fn client_first_is_libpq_shaped_with_random_nonce() {
    let client = ScramClient::new(password("pw"));
    let first = String::from_utf8(client.client_first()).unwrap();
    let nonce = first.strip_prefix("n,,n=,r=").unwrap();
    assert_eq!(nonce.len(), 24);
    assert!(
        nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    );
    let other = ScramClient::new(password("pw")).client_first();
    assert_ne!(client.client_first(), other);
    // The user name is escaped as a saslname.
    let named = ScramClient::with_nonce(password("pw"), "abc").with_user_name("a,b=c");
    assert_eq!(named.client_first(), b"n,,n=a=2Cb=3Dc,r=abc");
}

#[test]
fn our_client_against_our_server() {
    let mut server = ScramServer::from_password("s3cret", 4096);
    exchange(&mut ScramClient::new(password("s3cret")), &mut server).unwrap();

    let secret = ScramSecret::from_password("s3cret", b"some salt", 4096);
    let parsed = ScramSecret::parse(&secret.encode()).unwrap();
    let keys = exchange(
        &mut ScramClient::new(password("s3cret")),
        &mut ScramServer::new(parsed),
    )
    .unwrap();
    assert_eq!(keys.salt, b"some salt");
    assert_eq!(keys.iterations, 4096);
    assert_eq!(keys.stored_key(), secret.stored_key);
    assert_eq!(keys.server_key, secret.server_key);
}

#[test]
fn wrong_password_is_an_error_not_a_panic() {
    let secret = ScramSecret::from_password("right", b"salt", 64);
    let mut client = ScramClient::new(password("wrong"));
    let mut server = ScramServer::new(secret);
    let server_first = server.handle_client_first(&client.client_first()).unwrap();
    let client_final = client.handle_server_first(&server_first).unwrap();
    assert_eq!(
        server.handle_client_final(&client_final).unwrap_err(),
        AuthError::WrongPassword
    );
    // A failed exchange cannot be resumed.
    assert!(matches!(
        server.handle_client_final(&client_final),
        Err(AuthError::OutOfOrder { .. })
    ));
}

#[test]
fn pass_through_chain_and_secret_mismatch() {
    let secret = ScramSecret::from_password("chain", b"shared-salt", 512);
    // Client → pooler: the pooler learns the keys.
    let keys = exchange(
        &mut ScramClient::new(password("chain")),
        &mut ScramServer::new(secret.clone()),
    )
    .unwrap();
    // Pooler → server holding the same secret: logs in with the keys only.
    let mut upstream = ScramClient::new(ScramCredentials::Keys(keys.clone()));
    exchange(&mut upstream, &mut ScramServer::new(secret)).unwrap();

    // Same password, different salt or iteration count: clear error, no proof sent.
    for other in [
        ScramSecret::from_password("chain", b"other-salt", 512),
        ScramSecret::from_password("chain", b"shared-salt", 513),
    ] {
        let mut upstream = ScramClient::new(ScramCredentials::Keys(keys.clone()));
        let err = exchange(&mut upstream, &mut ScramServer::new(other)).unwrap_err();
        assert_eq!(err, AuthError::SecretMismatch);
        assert_eq!(
            err.to_string(),
            "SCRAM secret of the server differs from the pooler's: salt or iteration count mismatch"
        );
    }
}

#[test]
fn server_rejects_unsupported_gs2_and_extensions() {
    let secret = ScramSecret::from_password("pw", b"salt", 16);
    let first = |msg: &str| ScramServer::new(secret.clone()).handle_client_first(msg.as_bytes());
    assert_eq!(
        first("p=tls-server-end-point,,n=,r=abc").unwrap_err(),
        AuthError::ChannelBindingNotSupported
    );
    assert!(matches!(
        first("n,a=admin,n=,r=abc"),
        Err(AuthError::Unsupported { .. })
    ));
    assert!(matches!(
        first("n,,m=ext,n=,r=abc"),
        Err(AuthError::Unsupported { .. })
    ));
    for malformed in [
        "",
        "n",
        "n,",
        "n,,",
        "x,,n=,r=a",
        "n,,r=abc",
        "n,,n=,r=",
        "n,,n=,r=a b",
        "n,,n=u,r=a,1",
    ] {
        assert!(
            matches!(first(malformed), Err(AuthError::Malformed { .. })),
            "{malformed:?}"
        );
    }
    // Optional extensions and any user name are accepted.
    assert!(first("n,,n=whoever,r=abc,x=ext").is_ok());
    assert!(first("y,,n=,r=abc").is_ok());
}

#[test]
fn server_checks_channel_binding_and_nonce() {
    use AuthError::{ChannelBindingMismatch, NonceMismatch, WrongPassword};
    let secret = ScramSecret::from_password("pw", b"salt", 16);
    let proof = STANDARD.encode([0u8; 32]);
    let bad_proof = AuthError::malformed("client proof");
    // (GS2 flag, client-final with $P for a well-formed but wrong proof, expected error)
    let cases = [
        ("n", "c=eSws,r=abcSRV,p=$P", ChannelBindingMismatch),
        ("y", "c=biws,r=abcSRV,p=$P", ChannelBindingMismatch),
        ("n", "c=biws,r=abcSRX,p=$P", NonceMismatch),
        ("n", "c=biws,r=abc,p=$P", NonceMismatch),
        ("y", "c=eSws,r=abcSRV,p=$P", WrongPassword),
        ("n", "c=biws,r=abcSRV,x=1,p=$P", WrongPassword),
        ("n", "c=biws,r=abcSRV,p=$P,x=1", bad_proof.clone()),
        ("n", "c=biws,r=abcSRV,p=AAAA", bad_proof.clone()),
        ("n", "c=biws,r=abcSRV", bad_proof),
        (
            "n",
            "r=abcSRV,c=biws,p=$P",
            AuthError::malformed("channel binding"),
        ),
    ];
    for (flag, client_final, expected) in cases {
        let mut server = ScramServer::with_nonce(secret.clone(), "SRV");
        server
            .handle_client_first(format!("{flag},,n=,r=abc").as_bytes())
            .unwrap();
        let client_final = client_final.replace("$P", &proof);
        let err = server
            .handle_client_final(client_final.as_bytes())
            .unwrap_err();
        assert_eq!(err, expected, "{client_final}");
    }
}

#[test]
fn client_rejects_hostile_server_first() {
    use AuthError::{IterationCount, NonceMismatch};
    let max = MAX_ITERATIONS;
    let too_many = format!("r=abcdef,s=$S,i={}", u64::from(max) + 1);
    // (server-first with $S for a valid salt, expected error), for a client nonce "abc"
    let cases = [
        ("r=abc,s=$S,i=16", NonceMismatch),
        ("r=xbcdef,s=$S,i=16", NonceMismatch),
        ("r=ab,s=$S,i=16", NonceMismatch),
        ("r=abc d,s=$S,i=16", AuthError::malformed("server nonce")),
        ("r=abcdef,s=,i=16", AuthError::malformed("salt")),
        ("r=abcdef,s=!!!,i=16", AuthError::malformed("salt")),
        ("r=abcdef,s=$S,i=", AuthError::malformed("iteration count")),
        (
            "r=abcdef,s=$S,i=-1",
            AuthError::malformed("iteration count"),
        ),
        ("r=abcdef,s=$S,i=0", IterationCount { count: 0, max }),
        (
            &too_many,
            IterationCount {
                count: u64::from(max) + 1,
                max,
            },
        ),
        (
            "r=abcdef,s=$S,i=99999999999999999999999",
            IterationCount {
                count: u64::MAX,
                max,
            },
        ),
        (
            "m=x,r=abcdef,s=$S,i=16",
            AuthError::unsupported("mandatory SCRAM extension"),
        ),
        ("s=$S,r=abcdef,i=16", AuthError::malformed("server nonce")),
        (
            "r=abcdef,s=$S,i=16,,",
            AuthError::malformed("server-first extension"),
        ),
    ];
    let salt = STANDARD.encode(b"salt");
    let with_extension = format!("r=abcdef,s={salt},i=16,x=ext");
    let mut client = ScramClient::with_nonce(password("pw"), "abc");
    assert!(
        client
            .handle_server_first(with_extension.as_bytes())
            .is_ok()
    );
    for (server_first, expected) in cases {
        let server_first = server_first.replace("$S", &salt);
        let mut client = ScramClient::with_nonce(password("pw"), "abc");
        let err = client
            .handle_server_first(server_first.as_bytes())
            .unwrap_err();
        assert_eq!(err, expected, "{server_first}");
    }
}

#[test]
fn client_verifies_server_final() {
    let secret = ScramSecret::from_password("pw", b"salt", 16);
    let mut client = ScramClient::new(password("pw"));
    assert!(matches!(
        client.verify_server_final(b"v=AAAA"),
        Err(AuthError::OutOfOrder { .. })
    ));
    let mut server = ScramServer::new(secret);
    let server_first = server.handle_client_first(&client.client_first()).unwrap();
    let client_final = client.handle_server_first(&server_first).unwrap();
    let (server_final, _) = server.handle_client_final(&client_final).unwrap();

    let wrong = format!("v={}", STANDARD.encode([7u8; 32]));
    assert_eq!(
        client.verify_server_final(wrong.as_bytes()).unwrap_err(),
        AuthError::ServerSignatureMismatch
    );
    assert_eq!(
        client
            .verify_server_final(b"e=invalid-proof\x01")
            .unwrap_err(),
        AuthError::ServerError {
            reason: "invalid-proof?".to_owned()
        }
    );
    for malformed in [&b""[..], b"v=", b"v=AAAA", b"x=1", b"\xff\xfe", b"v=!!"] {
        assert!(matches!(
            client.verify_server_final(malformed),
            Err(AuthError::Malformed { .. })
        ));
    }
    let mut with_extension = server_final.clone();
    with_extension.extend_from_slice(b",x=1");
    client.verify_server_final(&with_extension).unwrap();
    client.verify_server_final(&server_final).unwrap();
    assert!(matches!(
        client.handle_server_first(&server_first),
        Err(AuthError::OutOfOrder { .. })
    ));
}

#[test]
fn postgres_protocol_secret_and_client_against_our_server() {
    for (pw, binding) in [
        ("tokio pw", ChannelBinding::unsupported()),
        ("tokio pw", ChannelBinding::unrequested()),
        ("pass\u{00A0}w\u{00AD}ord", ChannelBinding::unsupported()), // SASLprep maps both
        ("bell\u{0007}", ChannelBinding::unsupported()),             // prohibited: raw bytes
    ] {
        let secret =
            ScramSecret::parse(&postgres_protocol::password::scram_sha_256(pw.as_bytes())).unwrap();
        assert!(matches!(
            StoredSecret::parse(&secret.encode()),
            StoredSecret::Scram(_)
        ));
        assert_eq!(
            ScramSecret::from_password(pw, &secret.salt, secret.iterations),
            secret
        );

        let mut theirs = ScramSha256::new(pw.as_bytes(), binding);
        let client_first = theirs.message().to_vec();
        let mut server = ScramServer::with_nonce(secret.clone(), "fixedServerNonce");
        let server_first = server.handle_client_first(&client_first).unwrap();
        theirs.update(&server_first).unwrap();
        let their_final = theirs.message().to_vec();
        let (server_final, _) = server.handle_client_final(&their_final).unwrap();
        theirs.finish(&server_final).unwrap();

        // Our client, given their nonce, computes byte-identical messages (for "n,," only).
        let client_first = String::from_utf8(client_first).unwrap();
        if let Some(nonce) = client_first.strip_prefix("n,,n=,r=") {
            let mut ours = ScramClient::with_nonce(password(pw), nonce);
            assert_eq!(ours.client_first(), client_first.as_bytes());
            assert_eq!(
                ours.handle_server_first(&server_first).unwrap(),
                their_final
            );
            ours.verify_server_final(&server_final).unwrap();
        }
    }
}

#[test]
fn postgres_protocol_client_with_wrong_password_is_rejected() {
    let secret = ScramSecret::parse(&postgres_protocol::password::scram_sha_256(b"right")).unwrap();
    let mut theirs = ScramSha256::new(b"wrong", ChannelBinding::unsupported());
    let mut server = ScramServer::new(secret);
    let server_first = server.handle_client_first(theirs.message()).unwrap();
    theirs.update(&server_first).unwrap();
    assert_eq!(
        server.handle_client_final(theirs.message()).unwrap_err(),
        AuthError::WrongPassword
    );
}

#[test]
fn md5_matches_postgres_protocol() {
    assert_eq!(
        md5_secret("admin", "1234"),
        "md545f2603610af569b6155c45067268c6b"
    );
    for (user, pw, salt) in [
        ("admin", "1234", [1, 2, 3, 4]),
        ("bob", "ünïcode", [0xff, 0, 0x80, 7]),
    ] {
        let secret = md5_secret(user, pw);
        assert_eq!(
            secret,
            postgres_protocol::password::md5(pw.as_bytes(), user)
        );
        let expected =
            postgres_protocol::authentication::md5_hash(user.as_bytes(), pw.as_bytes(), salt);
        assert_eq!(md5_salted_response(&secret, salt), expected);
        assert!(md5_verify(&secret, salt, expected.as_bytes()));
        assert!(!md5_verify(
            &md5_secret(user, "nope"),
            salt,
            expected.as_bytes()
        ));
        let stored = StoredSecret::parse(&secret);
        assert_eq!(stored.kind(), "md5");
        assert_eq!(
            stored.md5_secret("ignored").as_deref(),
            Some(secret.as_str())
        );
    }
}

#[test]
fn debug_output_never_contains_secrets() {
    let secret = ScramSecret::from_password("hunter2", b"salt", 16);
    let keys = ScramKeys {
        client_key: [0xAB; 32],
        server_key: [0xCD; 32],
        salt: b"salt".to_vec(),
        iterations: 16,
    };
    let outputs = [
        format!("{secret:?}"),
        format!("{keys:?}"),
        format!("{:?}", StoredSecret::Plain("hunter2".into())),
        format!("{:?}", StoredSecret::Scram(secret.clone())),
        format!("{:?}", ScramCredentials::Password("hunter2".into())),
        format!(
            "{:?}",
            ScramClient::new(ScramCredentials::Keys(keys.clone()))
        ),
        format!("{:?}", ScramServer::new(secret.clone())),
    ];
    let forbidden = [
        "hunter2".to_owned(),
        STANDARD.encode(secret.stored_key),
        STANDARD.encode(secret.server_key),
        "171".to_owned(), // 0xAB in decimal, as a derived Debug of the array would show
        "205".to_owned(),
    ];
    for output in &outputs {
        for bad in &forbidden {
            assert!(!output.contains(bad.as_str()), "{output} leaks {bad}");
        }
    }
}

/// Deterministic splitmix64, so fuzz failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes, or a truncated / mutated copy of `valid`.
    fn message(&mut self, valid: &[u8]) -> Vec<u8> {
        const ALPHABET: &[u8] = b",=nyprcsivem0123456789AZaz+/\x00\xff\xc3";
        match self.below(4) {
            0 => (0..self.below(80)).map(|_| self.next() as u8).collect(),
            1 => valid[..self.below(valid.len() + 1)].to_vec(),
            _ => {
                let mut out = valid.to_vec();
                for _ in 0..=self.below(3) {
                    let at = self.below(out.len() + 1);
                    let byte = ALPHABET[self.below(ALPHABET.len())];
                    match self.below(3) {
                        0 if at < out.len() => out[at] = byte,
                        1 if at < out.len() => {
                            out.remove(at);
                        }
                        _ => out.insert(at, byte),
                    }
                }
                out
            }
        }
    }
}

#[test]
fn fuzz_every_step_never_panics() {
    let mut rng = Rng(0x5EED);
    let secret = ScramSecret::from_password("fuzz", b"salt", 2);
    let keys = ScramCredentials::Keys(ScramKeys {
        client_key: [1; 32],
        server_key: [2; 32],
        salt: b"salt".to_vec(),
        iterations: 2,
    });
    let client_first = b"n,,n=,r=clientNonce".to_vec();
    let server_first = format!("r=clientNonceSRV,s={},i=2", STANDARD.encode(b"salt")).into_bytes();
    let mut valid_server = ScramServer::with_nonce(secret.clone(), "SRV");
    valid_server.handle_client_first(&client_first).unwrap();
    let mut valid_client = ScramClient::with_nonce(password("fuzz"), "clientNonce");
    let client_final = valid_client.handle_server_first(&server_first).unwrap();
    let (server_final, _) = valid_server.handle_client_final(&client_final).unwrap();

    let mut accepted = 0;
    for case in 0..4000 {
        // Server, first step.
        let input = rng.message(&client_first);
        accepted += usize::from(
            ScramServer::new(secret.clone())
                .handle_client_first(&input)
                .is_ok(),
        );
        // Server, final step: anything but the exact valid message must fail.
        let mut server = ScramServer::with_nonce(secret.clone(), "SRV");
        server.handle_client_first(&client_first).unwrap();
        let input = rng.message(&client_final);
        let result = server.handle_client_final(&input);
        assert_eq!(
            result.is_ok(),
            input == client_final,
            "case {case}: {input:?}"
        );
        // Client, first step (keys: no PBKDF2 cost; a password every 16th case).
        let credentials = if case % 16 == 0 {
            password("fuzz")
        } else {
            keys.clone()
        };
        let mut client = ScramClient::with_nonce(credentials, "clientNonce");
        let _ = client.handle_server_first(&rng.message(&server_first));
        // Client, final step: signature must be exact (extensions aside).
        let input = rng.message(&server_final);
        if valid_client.verify_server_final(&input).is_ok() {
            assert!(input.starts_with(&server_final), "case {case}: {input:?}");
        }
        // Secrets.
        let text = String::from_utf8_lossy(&rng.message(secret.encode().as_bytes())).into_owned();
        let _ = StoredSecret::parse(&text);
    }
    assert!(
        accepted > 0,
        "mutations should sometimes keep client-first valid"
    );
}
