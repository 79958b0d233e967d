//! Helpers for the benchmark harness (`bench/run.sh`); not part of the product.
//!
//! - `empty-server`: an actix-web server with one empty handler, the HTTP ceiling;
//! - `mint`: distinct valid tokens signed with a deployment's key (no database writes), for
//!   verification runs where every request carries a token never seen before;
//! - `crypto`: the raw verification rate of the signature crates in use, on N threads;
//! - `seed-revocations`: bulk-load `token_revocation` for the cleanup and memory runs;
//! - `propagation`: revoke through one replica, time until every other one refuses.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use uuid::Uuid;

use tokend::config::SettingsArgs;
use tokend::scope::Scope;
use tokend::tokens::{IdentityType, KeySet, KeyStore, RevocationSet, TokenService, TokenSubject};

/// The allocator tokend uses, so the empty handler is the same stack minus tokend's work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tokend-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an empty handler.
    EmptyServer {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Print COUNT distinct valid tokens, one per line.
    Mint {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value = "sensor")]
        scope: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// An external OIDC issuer for the jwt-bearer runs: writes its public JWKS to JWKS_OUT and
    /// prints COUNT Kubernetes-shaped projected tokens (distinct jti), one per line.
    MintExternal {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        issuer: String,
        #[arg(long, default_value = "tokend")]
        audience: String,
        #[arg(long)]
        jwks_out: std::path::PathBuf,
    },
    /// Raw signature verifications per second on THREADS threads (JSON).
    Crypto {
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Insert LIVE revocations of unexpired tokens and EXPIRED ones of expired tokens.
    SeedRevocations {
        #[arg(long)]
        live: u64,
        #[arg(long)]
        expired: u64,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Revoke ROUNDS tokens, each through a random replica; time until all others refuse (JSON).
    Propagation {
        /// Base URLs of the replicas.
        #[arg(long = "replica", required = true)]
        replicas: Vec<String>,
        #[arg(long)]
        admin_token: String,
        #[arg(long, default_value_t = 1000)]
        rounds: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::EmptyServer { listen, workers } => empty_server(&listen, workers),
        Command::Mint {
            count,
            scope,
            settings,
        } => mint(count, &scope, settings),
        Command::MintExternal {
            count,
            issuer,
            audience,
            jwks_out,
        } => {
            mint_external(count, &issuer, &audience, &jwks_out);
            Ok(())
        }
        Command::Crypto { threads, seconds } => {
            crypto(threads, seconds);
            Ok(())
        }
        Command::SeedRevocations {
            live,
            expired,
            settings,
        } => seed(live, expired, settings),
        Command::Propagation {
            replicas,
            admin_token,
            rounds,
        } => propagation(&replicas, &admin_token, rounds),
    };
    if let Err(e) = result {
        eprintln!("tokend-bench: {e}");
        std::process::exit(2);
    }
}

fn empty_server(listen: &str, workers: Option<usize>) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let mut server = HttpServer::new(|| {
            App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() }))
        })
        .bind(listen)
        .map_err(|e| e.to_string())?;
        if let Some(w) = workers {
            server = server.workers(w);
        }
        server.run().await.map_err(|e| e.to_string())
    })
}

fn mint(count: usize, scope: &str, args: SettingsArgs) -> Result<(), String> {
    let settings = args.into_settings()?;
    let scope = Scope::parse(scope).map_err(|e| e.message().to_owned())?;
    let opened = tokend::app::open(&settings).map_err(|e| e.to_string())?;
    let metadata = match scope {
        Scope::Sensor => json!({"trigger_types": ["core.timer"]}),
        _ => json!({}),
    };
    let metadata = metadata.as_object().cloned().unwrap_or_default();
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let ttl = settings.scopes.bounds(scope).max;
    for i in 0..count {
        let name = format!("bench:{i}");
        let subject = TokenSubject {
            identity_id: 1_000_000 + i as i64,
            identity_type: IdentityType::ServiceAccount,
            name: &name,
            scope,
            metadata: &metadata,
            act: None,
        };
        let minted = opened
            .tokens
            .mint(&subject, ttl, tokend::time::now())
            .map_err(|e| e.to_string())?;
        writeln!(out, "{}", minted.token).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn mint_external(count: usize, issuer: &str, audience: &str, jwks_out: &std::path::Path) {
    use base64::Engine;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "bench-1", "alg": "EdDSA", "x": x}]});
    std::fs::write(jwks_out, jwks.to_string()).expect("the JWKS file");
    let der = key.to_pkcs8_der().expect("a PKCS#8 key");
    let encoding = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("bench-1".into());
    let now = chrono::Utc::now().timestamp();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        let sa = format!("bench-{}", i % 100);
        let claims = json!({
            "iss": issuer, "aud": [audience], "sub": format!("system:serviceaccount:bench:{sa}"),
            "iat": now, "nbf": now, "exp": now + 3600, "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {"namespace": "bench", "serviceaccount": {"name": sa, "uid": "u"},
                "pod": {"name": format!("{sa}-pod"), "uid": "p"}},
        });
        let token = jsonwebtoken::encode(&header, &claims, &encoding).expect("a token");
        let _ = writeln!(out, "{token}");
    }
}

fn crypto(threads: usize, seconds: f64) {
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    // A message the size of a sensor token's header and payload.
    let message = "x".repeat(420);
    let signature = key.sign(message.as_bytes());
    let public = key.verifying_key();
    let secret = [7u8; 32];
    let run = |f: Arc<dyn Fn() + Send + Sync>| -> f64 {
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (done, f) = (done.clone(), f.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            f();
                        }
                        n += 64;
                    }
                    done.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
        done.load(Ordering::Relaxed) as f64 / seconds
    };
    let (m, s, p) = (message.clone(), signature, public);
    let eddsa = run(Arc::new(move || {
        assert!(p.verify(m.as_bytes(), &s).is_ok());
    }));
    // Including the key decoding jsonwebtoken does on every verification.
    let (m2, s2, bytes) = (message.clone(), signature, public.to_bytes());
    let eddsa_with_key = run(Arc::new(move || {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).expect("a key");
        assert!(key.verify(m2.as_bytes(), &s2).is_ok());
    }));
    let m3 = message.clone();
    let hs256 = run(Arc::new(move || {
        use hmac::Mac;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret).expect("any key length");
        mac.update(m3.as_bytes());
        std::hint::black_box(mac.finalize());
    }));
    // The client secret check of client_credentials (SHA-256 of a 256-bit secret), against
    // what a password hash (argon2id, tokend's login cost) would cost per request.
    let presented = "tokend_cs_".to_owned() + &"A".repeat(43);
    let client_secret = run(Arc::new(move || {
        std::hint::black_box(tokend::oauth::clients::hash_secret(&presented));
    }));
    let argon = run(Arc::new(|| {
        use argon2::PasswordHasher;
        let hash = argon2::Argon2::default().hash_password(b"tokend_cs_secret");
        std::hint::black_box(hash.is_ok());
    }));
    let service = service_verify_per_s(threads, KeySet::ephemeral_ed25519().expect("a key"));
    let service_hs256 = service_verify_per_s(threads, KeySet::hs256(&secret));
    println!(
        "{}",
        json!({"threads": threads, "ed25519_verify_per_s": eddsa.round(),
               "ed25519_decode_key_and_verify_per_s": eddsa_with_key.round(),
               "hs256_per_s": hs256.round(),
               "tokend_verify_new_token_eddsa_per_s": service.round(),
               "tokend_verify_new_token_hs256_per_s": service_hs256.round(),
               "client_secret_check_per_s": client_secret.round(),
               "argon2id_default_per_s": argon.round()})
    );
}

/// `TokenService::verify` on tokens it has never seen: everything a cold `GET /auth/verify`
/// does except HTTP. 20,000 tokens per thread, each checked once.
fn service_verify_per_s(threads: usize, keys: KeySet) -> f64 {
    const PER_THREAD: usize = 20_000;
    let service = Arc::new(TokenService::new(
        Arc::new(KeyStore::new(keys)),
        Arc::new(RevocationSet::new()),
        "tokend".into(),
        "tokend".into(),
        Duration::from_secs(30),
        tokend::scope::ScopePolicy::default(),
    ));
    let metadata = json!({"trigger_types": ["core.timer"]});
    let metadata = metadata.as_object().cloned().unwrap_or_default();
    let batches: Vec<Vec<String>> = (0..threads)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| {
                    let name = format!("bench:{t}:{i}");
                    let subject = TokenSubject {
                        identity_id: i as i64,
                        identity_type: IdentityType::ServiceAccount,
                        name: &name,
                        scope: Scope::Sensor,
                        metadata: &metadata,
                        act: None,
                    };
                    service
                        .mint(&subject, Duration::from_secs(86_400), tokend::time::now())
                        .expect("minted")
                        .token
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let handles: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let service = service.clone();
            std::thread::spawn(move || {
                for token in &batch {
                    assert!(service.verify(token).is_ok());
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    (threads * PER_THREAD) as f64 / started.elapsed().as_secs_f64()
}

fn seed(live: u64, expired: u64, args: SettingsArgs) -> Result<(), String> {
    let settings = args.into_settings()?;
    let opened = tokend::app::open(&settings).map_err(|e| e.to_string())?;
    let mut conn = opened.pool.get().map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().naive_utc();
    let started = Instant::now();
    let total = live + expired;
    let row = |i: u64| {
        let exp = if i < expired {
            now - chrono::Duration::hours(1 + (i % 48) as i64)
        } else {
            now + chrono::Duration::hours(1 + (i % 48) as i64)
        };
        (Uuid::new_v4().to_string(), exp)
    };
    // 50,000 rows per transaction, 1,000 per statement.
    let mut start = 0;
    while start < total {
        let end = (start + 50_000).min(total);
        tokend::db::write_transaction(&mut conn, |c| -> Result<(), diesel::result::Error> {
            let mut i = start;
            while i < end {
                let rows: Vec<_> = (i..(i + 1000).min(end)).map(row).collect();
                tokend::db::queries::revocations::bulk_insert_for_benchmarks(c, &rows, now)?;
                i += 1000;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        start = end;
    }
    eprintln!(
        "seeded {total} revocations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn propagation(replicas: &[String], admin: &str, rounds: usize) -> Result<(), String> {
    use rand::Rng;
    if replicas.len() < 2 {
        return Err("need at least two replicas".into());
    }
    let api: Vec<tokend::client::ApiClient> = replicas
        .iter()
        .map(|u| tokend::client::ApiClient::new(u, Some(admin.to_owned())))
        .collect();
    let mut rng = rand::thread_rng();
    // Per round: until every other replica refuses; per replica: until that one refuses.
    let mut everywhere = Vec::with_capacity(rounds);
    let mut each = Vec::with_capacity(rounds * (api.len() - 1));
    for round in 0..rounds {
        let w = rng.gen_range(0..api.len());
        let writer = &api[w];
        let created = writer
            .post(
                "/service-accounts",
                &json!({"name": format!("bench:prop{round}"), "scope": "sensor",
                "metadata": {"trigger_types": ["t"]}}),
            )
            .map_err(|e| e.to_string())?;
        let token = created["token"].as_str().unwrap_or_default().to_owned();
        let id = created["identity_id"].as_i64().unwrap_or_default();
        let others: Vec<tokend::client::ApiClient> = api
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != w)
            .map(|(_, a)| a.with_token(token.clone()))
            .collect();
        // Every other replica accepts it first (keys are shared).
        for o in &others {
            o.get("/auth/whoami")
                .map_err(|e| format!("a replica refused a fresh token: {e}"))?;
        }
        writer
            .delete(&format!("/service-accounts/{id}"), &json!({}))
            .map_err(|e| e.to_string())?;
        // From the revocation's 200; the others are asked in turn, so each is timed alike.
        let revoked_at = Instant::now();
        let mut waiting: Vec<&tokend::client::ApiClient> = others.iter().collect();
        while !waiting.is_empty() {
            waiting.retain(|o| match o.get("/auth/whoami") {
                Err(e) if e.status() == Some(401) => {
                    each.push(revoked_at.elapsed().as_secs_f64() * 1000.0);
                    false
                }
                _ => true,
            });
            if waiting.is_empty() {
                break;
            }
            if revoked_at.elapsed() > Duration::from_secs(5) {
                return Err("a revocation did not propagate within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        everywhere.push(revoked_at.elapsed().as_secs_f64() * 1000.0);
    }
    let stats = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        let r = |x: f64| (x * 100.0).round() / 100.0;
        json!({"p50": r(pct(0.5)), "p99": r(pct(0.99)), "max": r(v[v.len() - 1]), "samples": v.len()})
    };
    let report: Value = json!({
        "rounds": rounds, "replicas": replicas.len(), "writer": "random",
        "propagation_ms": stats(everywhere),
        "per_replica_ms": stats(each),
    });
    println!("{report}");
    Ok(())
}
