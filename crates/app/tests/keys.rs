//! Secret keys and the audit trail below HTTP: the use cases of
//! `tenure_app::merchants::api_keys` and `tenure_app::audit` against a database of each
//! test's own (the HTTP side is `tests/e2e/keys.rs`).

use std::sync::Arc;

use chrono::Duration;
use tenure_app::App;
use tenure_app::AppError;
use tenure_app::dto::access::{ApiKeyStatus, AuditFilterParams, CreateApiKey, RollApiKey};
use tenure_app::dto::common::ListParams;
use tenure_app::dto::customers::CreateCustomer;
use tenure_app::dto::events::EventFilterParams;
use tenure_app::merchants::{self, api_keys};
use tenure_app::sessions::tokens::SessionSigner;
use tenure_app::{audit, customers, events};
use tenure_domain::access::{KeyScopes, ScopeSet};
use tenure_domain::billing::gateway::SandboxGateway;
use tenure_domain::ids::ApiKeyId;
use tenure_domain::outbound::TargetPolicy;
use tenure_store::PageRequest;
use tenure_store::repo::api_keys as repo;
use tenure_store::repo::events::EventActor;
use tenure_test_support::{TestClock, TestDb};

struct World {
    _db: TestDb,
    app: App,
    clock: TestClock,
    first: api_keys::MerchantKey,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let clock = TestClock::new();
    let app = App {
        webhook_targets: TargetPolicy::AllowPrivate,
        ..App::new(
            db.pool(4),
            Arc::new(clock.clone()),
            SessionSigner::new(&[7; 32], Duration::hours(1)),
            Arc::new(SandboxGateway::new()),
        )
    };
    let created = merchants::create(&app, "Roastery")
        .await
        .expect("merchant")
        .test;
    let first = grant(&app, &created.secret_key)
        .await
        .expect("the first key works");
    assert_eq!(first.key, created.api_key);
    World {
        _db: db,
        app,
        clock,
        first,
    }
}

/// What authentication finds for a secret, if it works now.
async fn grant(app: &App, secret: &str) -> Option<api_keys::MerchantKey> {
    let mut conn = app.db.conn().await.expect("conn");
    let found = repo::by_hash(&mut conn, &api_keys::hash(secret))
        .await
        .expect("lookup")?;
    let key = api_keys::MerchantKey::from_grant(&found, secret);
    key.works_at(app.now()).then_some(key)
}

fn page() -> PageRequest {
    PageRequest {
        limit: 100,
        starting_after: None,
    }
}

#[tokio::test]
async fn keys_are_made_rolled_and_revoked_with_their_rules() {
    let w = world().await;
    let created = api_keys::create(
        &w.app,
        w.first,
        CreateApiKey {
            name: Some("reader".into()),
            scopes: Some(vec!["customers:read".into()]),
        },
    )
    .await
    .expect("created");
    let reader = grant(&w.app, &created.secret).await.expect("works");
    assert_eq!(
        reader.scopes,
        KeyScopes::Restricted(ScopeSet::parse(&["customers:read"]).unwrap())
    );
    // A restricted key cannot make a broader one.
    let refused = api_keys::create(
        &w.app,
        reader,
        CreateApiKey {
            name: None,
            scopes: None,
        },
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(AppError::Forbidden {
                code: "scope_exceeds_key",
                ..
            })
        ),
        "{refused:?}"
    );

    // Rolled with an hour of grace: both work until the hour is over.
    let reader_id: ApiKeyId = reader.key;
    let rolled = api_keys::roll(
        &w.app,
        w.first,
        reader_id,
        RollApiKey {
            expires_in_secs: Some(3600),
        },
    )
    .await
    .expect("rolled");
    assert_eq!(rolled.key.scopes, Some(vec!["customers:read".to_owned()]));
    assert!(grant(&w.app, &created.secret).await.is_some());
    w.clock.advance(Duration::seconds(3601));
    assert!(grant(&w.app, &created.secret).await.is_none());
    assert!(grant(&w.app, &rolled.secret).await.is_some());
    let listed = api_keys::list(&w.app, w.first.merchant, page())
        .await
        .expect("list");
    let statuses: Vec<_> = listed.items.iter().map(|k| k.status).collect();
    assert_eq!(
        statuses,
        [
            ApiKeyStatus::Active,
            ApiKeyStatus::Expired,
            ApiKeyStatus::Active
        ]
    );

    // The last lasting unrestricted key stays; a second one lets it go.
    let last = api_keys::revoke(&w.app, w.first, w.first.key).await;
    assert!(
        matches!(
            last,
            Err(AppError::Conflict {
                code: "last_unrestricted_key",
                ..
            })
        ),
        "{last:?}"
    );
    let second = api_keys::create(
        &w.app,
        w.first,
        CreateApiKey {
            name: None,
            scopes: None,
        },
    )
    .await
    .expect("second");
    let revoked = api_keys::revoke(&w.app, w.first, w.first.key)
        .await
        .expect("revoked");
    assert_eq!(revoked.status, ApiKeyStatus::Revoked);
    let second = grant(&w.app, &second.secret).await.expect("works");
    let again = api_keys::revoke(&w.app, second, second.key).await;
    assert!(matches!(
        again,
        Err(AppError::Conflict {
            code: "last_unrestricted_key",
            ..
        })
    ));
}

#[tokio::test]
async fn events_recorded_as_a_request_name_it_and_the_audit_trail_filters() {
    let w = world().await;
    let actor = EventActor {
        api_key: w.first.key.uuid(),
        agent: Some("bot".into()),
        request_id: "req-1".into(),
    };
    let input = || CreateCustomer {
        external_id: "ada".into(),
        email: None,
        name: None,
        locale: None,
        metadata: None,
        tags: None,
        channel_preference: None,
        test_clock: None,
    };
    let ada = audit::acting(
        actor.clone(),
        customers::create(&w.app, w.first.merchant, input()),
    )
    .await
    .expect("created");
    let recorded = events::list(
        &w.app,
        w.first.merchant,
        EventFilterParams {
            event_type: None,
            resource_id: Some(ada.id.to_string()),
        },
        page(),
    )
    .await
    .expect("events");
    let event = &recorded.items[0];
    assert_eq!(event.api_key_id, Some(w.first.key.uuid()));
    assert_eq!(event.agent.as_deref(), Some("bot"));
    assert_eq!(event.request_id.as_deref(), Some("req-1"));
    // Outside a request, nobody is named.
    let bob = customers::create(
        &w.app,
        w.first.merchant,
        CreateCustomer {
            external_id: "bob".into(),
            ..input()
        },
    )
    .await
    .expect("created");
    let recorded = events::list(
        &w.app,
        w.first.merchant,
        EventFilterParams {
            event_type: None,
            resource_id: Some(bob.id.to_string()),
        },
        page(),
    )
    .await
    .expect("events");
    assert_eq!(recorded.items[0].api_key_id, None);

    for (agent, resource) in [
        (Some("bot"), ada.id.to_string()),
        (None, bob.id.to_string()),
    ] {
        audit::record(
            &w.app,
            audit::NewAuditEvent {
                merchant: w.first.merchant,
                actor: EventActor {
                    agent: agent.map(str::to_owned),
                    ..actor.clone()
                },
                method: "POST".into(),
                route: "/v1/customers".into(),
                resource_id: Some(resource),
                idempotency_key: None,
                status: 201,
                request_body: Some(serde_json::json!({"external_id": "x", "token": "t"})),
                at: w.app.now(),
            },
        )
        .await
        .expect("recorded");
    }
    let list = |agent: Option<&str>| {
        audit::list(
            &w.app,
            w.first.merchant,
            AuditFilterParams {
                api_key: None,
                agent: agent.map(str::to_owned),
                resource_id: None,
                created_from: None,
                created_to: None,
            },
            &ListParams {
                limit: None,
                starting_after: None,
            },
        )
    };
    let all = list(None).await.expect("all");
    assert_eq!(all.items.len(), 2);
    assert_eq!(
        all.items[0].request_body.as_ref().unwrap()["token"],
        "[redacted]"
    );
    let by_bot = list(Some("bot")).await.expect("bot");
    assert_eq!(by_bot.items.len(), 1);
    assert_eq!(by_bot.items[0].resource_id, Some(ada.id.to_string()));
}

#[tokio::test]
async fn entries_of_concurrent_requests_are_each_written_once_with_their_own_fields() {
    let w = world().await;
    let entry = |n: usize| audit::NewAuditEvent {
        merchant: w.first.merchant,
        actor: EventActor {
            api_key: w.first.key.uuid(),
            agent: n.is_multiple_of(2).then(|| format!("agent-{n}")),
            request_id: format!("req-{n}"),
        },
        method: "POST".into(),
        route: "/v1/customers/{id}".into(),
        resource_id: Some(format!("cus_{n}")),
        idempotency_key: n.is_multiple_of(3).then(|| format!("idem-{n}")),
        status: 200 + u16::try_from(n).expect("small"),
        request_body: Some(serde_json::json!({"n": n, "password": "p"})),
        at: w.app.now(),
    };
    // Polled together, the entries queue while the first batch is written, so the
    // writer takes several at once.
    let ids = futures_util::future::join_all((0..60).map(|n| audit::record(&w.app, entry(n))))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every entry recorded");
    assert_eq!(ids.len(), 60);
    // Written in batches: fewer inserts than entries (one per request would be 60).
    let inserts = w.app.audit_log.inserts();
    assert!(
        (1..30).contains(&inserts),
        "{inserts} inserts for 60 entries queued together"
    );

    let listed = all_entries(&w).await;
    assert_eq!(listed.len(), 60, "each entry once");
    for n in 0..60 {
        let found = listed
            .iter()
            .find(|e| e.resource_id.as_deref() == Some(format!("cus_{n}").as_str()))
            .expect("the entry of each request");
        assert_eq!(found.request_id, format!("req-{n}"));
        assert_eq!(found.agent, (n % 2 == 0).then(|| format!("agent-{n}")));
        assert_eq!(
            found.idempotency_key,
            (n % 3 == 0).then(|| format!("idem-{n}"))
        );
        assert_eq!(usize::from(found.status), 200 + n);
        assert_eq!(found.request_body.as_ref().unwrap()["n"], n);
        assert_eq!(
            found.request_body.as_ref().unwrap()["password"],
            "[redacted]"
        );
    }
}

/// A look at the replica that is abandoned half-way (actix drops a request's future when
/// its client goes away) must not stop every later look: the next read looks again.
/// The "replica" here accepts connections and never answers, so each look hangs until
/// the read that started it is dropped.
#[tokio::test]
async fn an_abandoned_look_at_the_replica_does_not_stop_later_looks() {
    use std::time::Duration as StdDuration;
    use tenure_app::replica::{self, Replica, ReplicaSettings};

    let w = world().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    // Holds accepted sockets open without a word.
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let replica_db =
        tenure_store::Db::connect(&format!("postgres://postgres@127.0.0.1:{port}/none"), 1)
            .unwrap();
    let app = App {
        replica: Some(Replica::new(
            replica_db,
            ReplicaSettings {
                check_timeout: StdDuration::from_secs(60),
                ..ReplicaSettings::default()
            },
        )),
        ..w.app.clone()
    };
    let read = || replica::source_of_read(&app, None, None);
    assert!(
        tokio::time::timeout(StdDuration::from_millis(300), read())
            .await
            .is_err(),
        "the first read looks at the replica, which hangs"
    );
    // Had the abandoned look left its flag set, this read would decide at once (on the
    // primary) without looking.
    assert!(
        tokio::time::timeout(StdDuration::from_millis(300), read())
            .await
            .is_err(),
        "the next read looks again"
    );
    held.abort();
}

/// Every entry of the first merchant, page by page.
async fn all_entries(w: &World) -> Vec<tenure_app::dto::access::AuditEventDto> {
    let mut listed = Vec::new();
    let mut starting_after = None;
    loop {
        let page = audit::list(
            &w.app,
            w.first.merchant,
            AuditFilterParams {
                api_key: None,
                agent: None,
                resource_id: None,
                created_from: None,
                created_to: None,
            },
            &ListParams {
                limit: Some(100),
                starting_after: starting_after.clone(),
            },
        )
        .await
        .expect("listed");
        starting_after = page.items.last().map(|e| e.id.clone());
        let more = page.has_more;
        listed.extend(page.items);
        if !more {
            return listed;
        }
    }
}

#[tokio::test]
async fn a_row_the_database_refuses_fails_alone_and_its_batch_is_written() {
    let w = world().await;
    let entry = |n: usize, merchant| audit::NewAuditEvent {
        merchant,
        actor: EventActor {
            api_key: w.first.key.uuid(),
            agent: None,
            request_id: format!("req-{n}"),
        },
        method: "POST".into(),
        route: "/v1/customers".into(),
        resource_id: Some(format!("cus_{n}")),
        idempotency_key: None,
        status: 201,
        request_body: Some(serde_json::json!({"n": n})),
        at: w.app.now(),
    };
    // Entry 17 names a merchant that does not exist: its row breaks the foreign key.
    let stranger = tenure_domain::ids::MerchantId::from_uuid(uuid::Uuid::now_v7());
    let results = futures_util::future::join_all((0..40).map(|n| {
        let merchant = if n == 17 { stranger } else { w.first.merchant };
        audit::record(&w.app, entry(n, merchant))
    }))
    .await;
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result.is_ok(), n != 17, "entry {n}: {result:?}");
    }
    let listed = all_entries(&w).await;
    assert_eq!(listed.len(), 39, "every other entry was written, once");
}

#[tokio::test]
async fn nul_in_a_body_s_keys_and_strings_is_replaced_and_the_entry_written() {
    let w = world().await;
    let entry = |n: usize, body: serde_json::Value, resource: &str| audit::NewAuditEvent {
        merchant: w.first.merchant,
        actor: EventActor {
            api_key: w.first.key.uuid(),
            agent: Some("bot".into()),
            request_id: format!("req-{n}"),
        },
        method: "POST".into(),
        route: "/v1/customers/{id}".into(),
        resource_id: Some(resource.to_owned()),
        idempotency_key: None,
        status: 422,
        request_body: Some(body),
        at: w.app.now(),
    };
    let results = futures_util::future::join_all((0..30).map(|n| {
        if n == 5 {
            audit::record(
                &w.app,
                entry(
                    n,
                    serde_json::json!({"na\u{0}me": "A\u{0}da", "tags": ["x\u{0}"]}),
                    "cus_\u{0}5",
                ),
            )
        } else {
            audit::record(&w.app, entry(n, serde_json::json!({"n": n}), "cus_1"))
        }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = all_entries(&w).await;
    assert_eq!(listed.len(), 30);
    let nul = listed
        .iter()
        .find(|e| e.request_id == "req-5")
        .expect("the entry with NUL");
    assert_eq!(
        nul.request_body,
        Some(serde_json::json!({"na\u{FFFD}me": "A\u{FFFD}da", "tags": ["x\u{FFFD}"]}))
    );
    assert_eq!(nul.resource_id.as_deref(), Some("cus_\u{FFFD}5"));
}

/// An entry for the first merchant, told apart by `n`.
fn numbered_entry(w: &World, n: usize) -> audit::NewAuditEvent {
    audit::NewAuditEvent {
        merchant: w.first.merchant,
        actor: EventActor {
            api_key: w.first.key.uuid(),
            agent: None,
            request_id: format!("req-{n}"),
        },
        method: "POST".into(),
        route: "/v1/customers".into(),
        resource_id: Some(format!("cus_{n}")),
        idempotency_key: None,
        status: 201,
        request_body: None,
        at: w.app.now(),
    }
}

#[tokio::test]
async fn the_writer_outlives_and_does_not_wait_for_the_worker_that_sent_the_first_entry() {
    let w = world().await;
    // An HTTP worker is a single-threaded runtime. The first entry comes from one; then a
    // slow handler blocks that worker's thread for three seconds.
    let (started, blocked) = std::sync::mpsc::channel();
    let worker = {
        let app = w.app.clone();
        let first = numbered_entry(&w, 0);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                audit::record(&app, first).await.expect("the first entry");
                started.send(()).expect("told");
                std::thread::sleep(std::time::Duration::from_secs(3));
            });
        })
    };
    tokio::task::spawn_blocking(move || blocked.recv())
        .await
        .expect("joined")
        .expect("the first entry was written");
    // Another worker's entry is written while the first worker is stuck.
    let began = std::time::Instant::now();
    audit::record(&w.app, numbered_entry(&w, 1))
        .await
        .expect("the second entry");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(2),
        "written in {:?}, not after the blocked worker",
        began.elapsed()
    );
    // The first worker's runtime ends; entries still land.
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .expect("joined")
        .expect("the worker ended");
    for n in 2..5 {
        audit::record(&w.app, numbered_entry(&w, n))
            .await
            .expect("an entry after the first worker ended");
    }
    assert_eq!(all_entries(&w).await.len(), 5);
}

#[tokio::test]
async fn a_shutdown_writes_what_is_queued_and_then_refuses() {
    let w = world().await;
    let log = w.app.audit_log.clone();
    let (written, ()) = tokio::join!(
        futures_util::future::join_all(
            (0..50).map(|n| audit::record(&w.app, numbered_entry(&w, n)))
        ),
        async {
            tokio::task::yield_now().await;
            log.shutdown().await;
        }
    );
    let accepted = written.iter().filter(|r| r.is_ok()).count();
    assert!(accepted > 0, "{written:?}");
    assert_eq!(
        all_entries(&w).await.len(),
        accepted,
        "every entry answered as written is in the trail"
    );
    assert!(matches!(
        audit::record(&w.app, numbered_entry(&w, 99)).await,
        Err(AppError::Unavailable(_))
    ));
}
