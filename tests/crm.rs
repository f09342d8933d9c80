//! The widget's forms, identity and files, and the CRM behind them, over the real server:
//! leads and links (CF3, CF4), pre-chat rules (ID7), trust levels and merge suggestions
//! (XB11), signed identities (ID8), merges with audit (ID3, OC19), files (XB1), export and
//! erasure (XB6), and the widget's configuration (CF7).

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer, Ws};
use serde_json::{json, Value};
use std::time::Duration;

/// Sends a form and waits for its ack or error.
async fn form(ws: &mut Ws, client_id: &str, which: &str, fields: Value) -> Value {
    ws.send(json!({"type": "form", "client_id": client_id, "form": which, "fields": fields}))
        .await;
    loop {
        let f = ws.next_of_any(&["ack", "error"]).await;
        if f["client_id"] == client_id || f["type"] == "error" {
            return f;
        }
    }
}

async fn contact_of(srv: &TestServer, token: &str, cid: i64) -> Value {
    for _ in 0..100 {
        let (_, c) = srv
            .get(&format!("/api/conversations/{cid}"), Some(token))
            .await;
        if let Some(id) = c["conversation"]["contact"]["id"].as_i64() {
            let (status, card) = srv.get(&format!("/api/contacts/{id}"), Some(token)).await;
            assert_eq!(status, 200, "{card}");
            return card;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("conversation {cid} has no contact");
}

async fn set_channel(srv: &TestServer, admin: &str, settings: Value) {
    let (status, body) = srv
        .patch(
            "/api/channels/1",
            Some(admin),
            json!({"title": "Website", "kind": "web", "settings": settings}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn a_form_makes_a_lead_the_operator_sees_at_once(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let mut op = srv.operator_ws(&ana).await;
    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("v1", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    // The name form: the name first, HTML and all (stored as written, shown as text).
    let raw_name = "<b>Ana</b> <script>alert(1)</script>";
    let ack = form(&mut v, "f1", "name", json!({"name": raw_name})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let event = loop {
        let m = op.next_of("message").await;
        if m["body"] == "form" {
            break m;
        }
    };
    assert_eq!(event["kind"], "event");
    assert_eq!(
        event["meta"]["fields"]["name"], raw_name,
        "the operator sees it at once (CF3)"
    );
    // Then e-mail and phone, normalised (ID1).
    let ack = form(
        &mut v,
        "f2",
        "name",
        json!({"name": "Ana", "email": " Ana@Example.COM ", "phone": "+34 600-123-456"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let card = contact_of(&srv, &ana, cid).await;
    assert_eq!(card["name"], "Ana");
    assert_eq!(card["email"], "ana@example.com");
    assert_eq!(card["phone"], "+34600123456");
    assert!(card["identifiers"]
        .as_array()
        .expect("ids")
        .iter()
        .all(|i| i["verified"] == false));
    assert_eq!(card["conversations"][0]["id"], cid);
    // Bad values are refused with the reason; nothing is stored.
    let err = form(
        &mut v,
        "f3",
        "name",
        json!({"name": "Ana", "email": "not-an-email"}),
    )
    .await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("bad_request"), Some("f3"))
    );
    let err = form(&mut v, "f4", "name", json!({"email": "a@b.co"})).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("name is required"),
        "{err}"
    );
    let err = form(&mut v, "f5", "survey", json!({})).await;
    assert_eq!(err["code"], "bad_request");
    // A retried form is stored once.
    let again = form(&mut v, "f2", "name", json!({"name": "Ana"})).await;
    assert_eq!(again["duplicate"], true);
    srv.stop().await;
}
both_backends!(lead, a_form_makes_a_lead_the_operator_sees_at_once);

async fn a_typed_claim_on_someone_elses_email_suggests_and_never_links(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    // María, a customer with history.
    let (mut maria, _) = srv.new_visitor().await;
    let maria_cid = maria.say("m1", "mi pedido 123 con mi dirección").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(
        &mut maria,
        "mf",
        "name",
        json!({"name": "María", "email": "maria@example.com"}),
    )
    .await;
    let maria_contact = contact_of(&srv, &ana, maria_cid).await["id"]
        .as_i64()
        .expect("id");
    // Someone else types María's e-mail.
    let (mut other, _) = srv.new_visitor().await;
    let other_cid = other.say("o1", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    let ack = form(
        &mut other,
        "of",
        "name",
        json!({"name": "Impostor", "email": "MARIA@example.com"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let card = contact_of(&srv, &ana, other_cid).await;
    let other_contact = card["id"].as_i64().expect("id");
    assert_ne!(
        other_contact, maria_contact,
        "a typed claim never links to someone else"
    );
    let convs: Vec<i64> = card["conversations"]
        .as_array()
        .expect("c")
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    assert_eq!(convs, vec![other_cid], "María's history is not exposed");
    // Operators get a suggestion instead.
    let (_, list) = srv.get("/api/suggestions", Some(&ana)).await;
    let s = list
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["contact"]["id"] == other_contact)
        .cloned()
        .expect("suggested");
    assert_eq!(
        (s["candidate"]["id"].as_i64(), s["value"].as_str()),
        (Some(maria_contact), Some("maria@example.com"))
    );
    // Rejected: kept apart for good (typing again suggests nothing new).
    let sid = s["id"].as_i64().expect("id");
    let (status, _) = srv
        .post(
            &format!("/api/suggestions/{sid}/reject"),
            Some(&ana),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = srv
        .post(
            &format!("/api/suggestions/{sid}/accept"),
            Some(&ana),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "decided already");
    form(
        &mut other,
        "of2",
        "name",
        json!({"email": "maria@example.com", "name": "Impostor"}),
    )
    .await;
    let (_, list) = srv.get("/api/suggestions", Some(&ana)).await;
    assert!(list
        .as_array()
        .expect("l")
        .iter()
        .all(|s| s["contact"]["id"] != other_contact));

    // A genuine second contact of María: accepted, merged, with an audit trail, and the open
    // conversation's header follows (OC19).
    let (mut again, _) = srv.new_visitor().await;
    let again_cid = again.say("a1", "soy María otra vez").await["conversation_id"]
        .as_i64()
        .expect("id");
    // (It is suggested twice: María, and the impostor who typed her e-mail too; the
    // operator picks María.)
    form(
        &mut again,
        "af",
        "name",
        json!({"name": "María G.", "email": "maria@example.com"}),
    )
    .await;
    let lead = contact_of(&srv, &ana, again_cid).await["id"]
        .as_i64()
        .expect("id");
    let (_, list) = srv.get("/api/suggestions", Some(&ana)).await;
    let sid = list
        .as_array()
        .expect("l")
        .iter()
        .find(|s| s["contact"]["id"] == lead && s["candidate"]["id"] == maria_contact)
        .expect("suggested")["id"]
        .as_i64()
        .expect("id");
    let mut op = srv.operator_ws(&ana).await;
    let (status, decided) = srv
        .post(
            &format!("/api/suggestions/{sid}/accept"),
            Some(&ana),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["merged"]["into"], maria_contact);
    let header = loop {
        let h = op.next_of("conversation").await;
        if h["conversation"]["id"] == again_cid {
            break h;
        }
    };
    assert_eq!(header["conversation"]["contact"]["id"], maria_contact);
    let (_, card) = srv
        .get(&format!("/api/contacts/{maria_contact}"), Some(&ana))
        .await;
    let mut convs: Vec<i64> = card["conversations"]
        .as_array()
        .expect("c")
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    convs.sort_unstable();
    assert_eq!(convs, vec![maria_cid, again_cid]);
    // The old lead redirects to María.
    let (_, old) = srv.get(&format!("/api/contacts/{lead}"), Some(&ana)).await;
    assert_eq!(old["id"], maria_contact);
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    let (_, doc) = srv
        .get(
            &format!("/api/contacts/{maria_contact}/export"),
            Some(&admin),
        )
        .await;
    let merge = &doc["merges"][0];
    assert_eq!(
        (
            merge["from_contact_id"].as_i64(),
            merge["by_operator_id"].as_i64()
        ),
        (Some(lead), Some(ana_id))
    );
    assert_eq!(merge["reason"], "suggestion accepted");
    srv.stop().await;
}
both_backends!(
    typed_claims,
    a_typed_claim_on_someone_elses_email_suggests_and_never_links
);

async fn signed_identities_are_checked_and_verified_ones_merge(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    let (_, secret) = srv.get("/api/channels/1/secret", Some(&admin)).await;
    let secret = secret["identity_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let sign = |user: &str| charla::crm::identity::sign_user_id(&secret, user);
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (status, _) = srv.get("/api/channels/1/secret", Some(&ana)).await;
    assert_eq!(status, 403, "only administrators see the secret");

    // Forged: refused even where signing is optional.
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "identity": {"user_id": "42", "signature": sign("43")}}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "unauthorized");
    // Valid: the visitor's contact has the verified site id.
    ws.send(json!({"type": "hello", "identity": {"user_id": "42", "signature": sign("42"), "name": "Luisa", "email": "luisa@example.com"}})).await;
    ws.next_of("welcome").await;
    let first = ws.say("l1", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    let card = contact_of(&srv, &ana, first).await;
    let contact = card["id"].as_i64().expect("id");
    let ext = card["identifiers"]
        .as_array()
        .expect("ids")
        .iter()
        .find(|i| i["kind"] == "external_id")
        .cloned()
        .expect("external id");
    assert_eq!(
        (ext["value"].as_str(), ext["verified"].as_bool()),
        (Some("1:42"), Some(true)),
        "kept with the channel that vouches for it"
    );
    assert_eq!(card["email"], "luisa@example.com");
    assert!(
        card["identifiers"]
            .as_array()
            .expect("ids")
            .iter()
            .any(|i| i["kind"] == "email" && i["verified"] == false),
        "unsigned e-mail stays typed"
    );

    // The same user on another device, who had started anonymously: merged automatically.
    let (mut other, welcome) = srv.new_visitor().await;
    let token = welcome["visitor_token"].as_str().expect("t").to_string();
    let second = other.say("a1", "antes de entrar").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(&mut other, "af", "name", json!({"name": "L."})).await;
    let lead = contact_of(&srv, &ana, second).await["id"]
        .as_i64()
        .expect("id");
    assert_ne!(lead, contact);
    drop(other);
    let mut other = srv.ws("/ws/visitor").await;
    other.send(json!({"type": "hello", "token": token, "identity": {"user_id": "42", "signature": sign("42")}})).await;
    other.next_of("welcome").await;
    let card = contact_of(&srv, &ana, second).await;
    assert_eq!(card["id"], contact, "verified match merges");
    let (_, doc) = srv
        .get(&format!("/api/contacts/{contact}/export"), Some(&admin))
        .await;
    let merge = doc["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .find(|m| m["from_contact_id"] == lead)
        .cloned()
        .expect("audit");
    assert!(merge["by_operator_id"].is_null());
    assert_eq!(merge["reason"], "verified external_id");

    // Another signed user on the same browser gets a fresh visitor, not the first's.
    let mut third = srv.ws("/ws/visitor").await;
    third.send(json!({"type": "hello", "token": token, "identity": {"user_id": "77", "signature": sign("77")}})).await;
    let w = third.next_of("welcome").await;
    assert!(w["visitor_token"].is_string(), "a new identity");
    assert!(w["conversation"].is_null(), "nothing of user 42 resumed");

    // Required: a hello without identity is refused.
    let (status, _) = srv
        .patch(
            "/api/channels/1",
            Some(&admin),
            json!({"title": "Website", "kind": "web", "settings": {"require_identity": true}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello"})).await;
    let err = ws.next_of("error").await;
    assert_eq!(err["code"], "unauthorized");
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains("requires a signed identity"));
    // A rotated secret stops old signatures at once.
    let (_, rotated) = srv
        .post("/api/channels/1/secret", Some(&admin), json!({}))
        .await;
    assert_ne!(rotated["identity_secret"].as_str(), Some(secret.as_str()));
    ws.send(json!({"type": "hello", "identity": {"user_id": "42", "signature": sign("42")}}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "unauthorized");
    srv.stop().await;
}
both_backends!(
    identity,
    signed_identities_are_checked_and_verified_ones_merge
);

/// Signs in `user` on `channel` (its id and secret) from a new browser and says hello;
/// returns the contact of the conversation it opens.
async fn signed_in(
    srv: &TestServer,
    op: &str,
    channel: (&str, &str),
    user: &str,
    say: &str,
) -> Value {
    let (name, secret) = channel;
    let signature = charla::crm::identity::sign_user_id(secret, user);
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "channel": name, "identity": {"user_id": user, "signature": signature}}))
        .await;
    ws.next_of("welcome").await;
    let cid = ws.say("s", say).await["conversation_id"]
        .as_i64()
        .expect("id");
    contact_of(srv, op, cid).await
}

async fn the_same_user_id_on_two_sites_is_two_people(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    let (status, shop) = srv
        .post(
            "/api/channels",
            Some(&admin),
            json!({"name": "shop", "title": "Shop", "kind": "web"}),
        )
        .await;
    assert_eq!(status, 201, "{shop}");
    let shop_id = shop["id"].as_i64().expect("id");
    let secret = |id: i64| {
        let srv = &srv;
        let admin = admin.clone();
        async move {
            let (_, s) = srv
                .get(&format!("/api/channels/{id}/secret"), Some(&admin))
                .await;
            s["identity_secret"].as_str().expect("secret").to_string()
        }
    };
    let (web_secret, shop_secret) = (secret(1).await, secret(shop_id).await);
    assert_ne!(web_secret, shop_secret);
    // User 42 of the website and user 42 of the shop: each site vouches for its own users.
    let web = signed_in(
        &srv,
        &admin,
        ("web", &web_secret),
        "42",
        "hola desde la web",
    )
    .await;
    let shop = signed_in(
        &srv,
        &admin,
        ("shop", &shop_secret),
        "42",
        "hola desde la tienda",
    )
    .await;
    assert_ne!(web["id"], shop["id"], "two sites' users are never merged");
    let ext = |card: &Value| {
        card["identifiers"]
            .as_array()
            .expect("ids")
            .iter()
            .filter(|i| i["kind"] == "external_id")
            .map(|i| i["value"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ext(&web), vec!["1:42".to_string()]);
    assert_eq!(ext(&shop), vec![format!("{shop_id}:42")]);
    assert_eq!(shop["conversations"].as_array().map(Vec::len), Some(1));
    // The same user of one site on another device is still the same person.
    let again = signed_in(&srv, &admin, ("web", &web_secret), "42", "otra vez yo").await;
    assert_eq!(again["id"], web["id"]);
    srv.stop().await;
}
both_backends!(
    identity_per_channel,
    the_same_user_id_on_two_sites_is_two_people
);

/// What the database held before site user ids were scoped by channel: a shop channel,
/// a contact signed in there with a conversation, and one signed in with none.
const BARE_SITE_USER_IDS: &[&str] = &[
    "INSERT INTO channels (name, title, kind, created_at) VALUES ('shop', 'Shop', 'web', 0)",
    "INSERT INTO contacts (name, created_at, updated_at) VALUES ('Shopper', 0, 0)",
    "INSERT INTO contacts (name, created_at, updated_at) VALUES ('Reader', 0, 0)",
    "INSERT INTO conversations (channel, created_at, updated_at, contact_id) \
     SELECT 'shop', 0, 0, id FROM contacts WHERE name = 'Shopper'",
    "INSERT INTO contact_identifiers (contact_id, kind, value, verified, source, created_at) \
     SELECT id, 'external_id', '42', TRUE, 'widget_identity', 0 FROM contacts WHERE name = 'Shopper'",
    "INSERT INTO contact_identifiers (contact_id, kind, value, verified, source, created_at) \
     SELECT id, 'external_id', '77', TRUE, 'widget_identity', 0 FROM contacts WHERE name = 'Reader'",
];

#[derive(diesel::QueryableByName)]
struct SiteUser {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// Takes the database back to before the migration that scopes site user ids, seeds it
/// with bare ids, migrates again and answers the ids as they are now, by contact name.
macro_rules! migrate_bare_site_user_ids {
    ($conn:ty, $url:expr, $dir:literal) => {{
        use diesel::{Connection, RunQueryDsl};
        use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
        const MIGRATIONS: EmbeddedMigrations = diesel_migrations::embed_migrations!($dir);
        let mut conn = <$conn>::establish($url).expect("connect");
        conn.run_pending_migrations(MIGRATIONS).expect("migrate");
        loop {
            let version = conn.revert_last_migration(MIGRATIONS).expect("revert");
            if version.to_string().starts_with("20261204000001") {
                break;
            }
        }
        for sql in BARE_SITE_USER_IDS {
            diesel::sql_query(*sql).execute(&mut conn).expect(sql);
        }
        conn.run_pending_migrations(MIGRATIONS)
            .expect("migrate again");
        diesel::sql_query(
            "SELECT c.name, i.value FROM contact_identifiers i \
             JOIN contacts c ON c.id = i.contact_id \
             WHERE i.kind = 'external_id' ORDER BY c.name",
        )
        .load::<SiteUser>(&mut conn)
        .expect("site users")
    }};
}

async fn bare_site_user_ids_from_before_get_their_channel(db: TestDb) {
    let rows = if db.backend == "sqlite" {
        migrate_bare_site_user_ids!(diesel::SqliteConnection, &db.url, "migrations/sqlite")
    } else {
        migrate_bare_site_user_ids!(diesel::PgConnection, &db.url, "migrations/postgres")
    };
    let rows: Vec<(String, String)> = rows.into_iter().map(|r| (r.name, r.value)).collect();
    // The shop is channel 2: the channel of the contact's first conversation, else the
    // first channel.
    assert_eq!(
        rows,
        vec![
            ("Reader".to_string(), "1:77".to_string()),
            ("Shopper".to_string(), "2:42".to_string()),
        ]
    );
    // Shop user 42 signing in now is that contact.
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    let (_, secret) = srv.get("/api/channels/2/secret", Some(&admin)).await;
    let secret = secret["identity_secret"].as_str().expect("secret");
    let card = signed_in(&srv, &admin, ("shop", secret), "42", "hola").await;
    assert_eq!(card["name"], "Shopper");
    srv.stop().await;
}
both_backends!(
    identity_migration,
    bare_site_user_ids_from_before_get_their_channel
);

async fn prechat_rules_and_widget_configuration(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    set_channel(
        &srv,
        &admin,
        json!({"prechat": {"name": "optional", "email": "required", "phone": "optional"}, "default_country_code": "34", "language": "es"}),
    )
    .await;
    let (status, _) = srv
        .patch(
            "/api/channels/1",
            Some(&admin),
            json!({"title": "Website", "kind": "web", "settings": {"language": "fr"}}),
        )
        .await;
    assert_eq!(status, 400, "settings are checked");
    let (status, cfg) = srv.get("/api/widget/web", None).await;
    assert_eq!(status, 200);
    assert_eq!(cfg["prechat"]["email"], "required");
    assert_eq!(cfg["language"], "es");
    assert_eq!(
        cfg["online"], false,
        "nobody can answer: the offline form (CF7)"
    );
    assert!(cfg.get("identity_secret").is_none() && !cfg.to_string().contains("secret\":\""));
    let _op = srv.operator_ws(&admin).await;
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.get("/api/widget/web", None).await.1["online"], true);
    assert_eq!(srv.get("/api/widget/nope", None).await.0, 400);

    let (mut v, _) = srv.new_visitor().await;
    let err = form(&mut v, "p1", "prechat", json!({"name": "Pepe"})).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("e-mail is required"),
        "{err}"
    );
    // A pre-chat form opens the conversation; a national phone gets the channel's code.
    let ack = form(
        &mut v,
        "p2",
        "prechat",
        json!({"name": "Pepe", "email": "pepe@example.com", "phone": "600 123 456"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let cid = ack["conversation_id"].as_i64().expect("id");
    assert_eq!(contact_of(&srv, &admin, cid).await["phone"], "+34600123456");
    // The offline form needs an e-mail.
    let err = form(&mut v, "p3", "offline", json!({"name": "Pepe"})).await;
    assert_eq!(err["code"], "bad_request");
    srv.stop().await;
}
both_backends!(prechat, prechat_rules_and_widget_configuration);

async fn mandatory_prechat_fields_hold_for_any_client(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    set_channel(
        &srv,
        &admin,
        json!({"prechat": {"name": "required", "email": "required", "phone": "optional"}}),
    )
    .await;
    // A client that skips the widget's form cannot chat: the first message is refused.
    let (mut v, _) = srv.new_visitor().await;
    v.send(json!({"type": "message", "client_id": "m1", "body": "hola"}))
        .await;
    let err = v.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("prechat_required"), Some("m1")),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("name, email")),
        "{err}"
    );
    // Nor can another form that lacks them open the conversation.
    let err = form(
        &mut v,
        "o1",
        "offline",
        json!({"email": "pepe@example.com"}),
    )
    .await;
    assert_eq!(err["code"], "prechat_required", "{err}");
    // The pre-chat form opens it; then the visitor chats, on this socket and the next.
    let ack = form(
        &mut v,
        "p1",
        "prechat",
        json!({"name": "Pepe", "email": "pepe@example.com"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let cid = ack["conversation_id"].as_i64().expect("id");
    assert_eq!(v.say("m2", "hola").await["conversation_id"], cid);
    // A form that brings the required fields itself opens one too (CF7 while offline).
    let (mut w, _) = srv.new_visitor().await;
    let ack = form(
        &mut w,
        "o2",
        "offline",
        json!({"email": "eva@example.com", "name": "Eva"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    w.say("w1", "¿hay alguien?").await;
    // A visitor the site vouches for is not asked (ID8), as in the widget.
    let (_, secret) = srv.get("/api/channels/1/secret", Some(&admin)).await;
    let secret = secret["identity_secret"].as_str().expect("secret");
    let signature = charla::crm::identity::sign_user_id(secret, "u-7");
    let mut signed = srv.ws("/ws/visitor").await;
    signed
        .send(json!({"type": "hello", "identity": {"user_id": "u-7", "signature": signature}}))
        .await;
    signed.next_of("welcome").await;
    signed.say("s1", "hola, soy cliente").await;
    // Optional fields: anyone chats.
    set_channel(
        &srv,
        &admin,
        json!({"prechat": {"name": "optional", "email": "optional", "phone": "off"}}),
    )
    .await;
    let (mut anyone, _) = srv.new_visitor().await;
    anyone.say("a1", "hola").await;
    srv.stop().await;
}
both_backends!(
    prechat_enforced,
    mandatory_prechat_fields_hold_for_any_client
);

async fn a_closed_channel_is_offline_with_operators_online(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    let _op = srv.operator_ws(&admin).await;
    let online = || async { srv.get("/api/widget/web", None).await.1 };
    for _ in 0..100 {
        if online().await["online"] == true {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(online().await["online"], true, "an operator can answer");
    // Outside business hours: closed, so the widget offers the offline form (CF7) though
    // someone is connected.
    set_channel(&srv, &admin, json!({"closed": true})).await;
    let cfg = online().await;
    assert_eq!(
        (cfg["online"].as_bool(), cfg["closed"].as_bool()),
        (Some(false), Some(true)),
        "{cfg}"
    );
    assert_eq!(cfg["offline_form"], true);
    set_channel(&srv, &admin, json!({"closed": false})).await;
    assert_eq!(online().await["online"], true, "open again");
    srv.stop().await;
}
both_backends!(
    closed_channel,
    a_closed_channel_is_offline_with_operators_online
);

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82";

async fn upload(
    srv: &TestServer,
    auth: &str,
    name: &str,
    ty: &str,
    data: &'static [u8],
) -> (u16, Value) {
    let mut res = awc::Client::new()
        .post(srv.url(&format!("/api/uploads?name={name}")))
        .insert_header(("Authorization", auth.to_string()))
        .insert_header(("Content-Type", ty.to_string()))
        .send_body(data)
        .await
        .expect("upload");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn files_go_both_ways_and_are_checked(db: TestDb) {
    let srv = TestServer::start_with(&db, |c| c.max_upload_bytes = 64 * 1024).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (mut v, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"].as_str().expect("t").to_string();
    let visitor_auth = format!("Visitor {vtoken}");
    // An image as the very first message.
    let (status, file) = upload(&srv, &visitor_auth, "../foto%22.png", "image/png", PNG).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(
        (file["type"].as_str(), file["name"].as_str()),
        (Some("image/png"), Some("foto.png"))
    );
    v.send(json!({"type": "message", "client_id": "img", "body": "", "attachment": file["id"]}))
        .await;
    let ack = v.next_of_any(&["ack", "error"]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let cid = ack["conversation_id"].as_i64().expect("id");
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    let sent = conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .find(|m| m["client_id"] == "img")
        .cloned()
        .expect("stored");
    assert_eq!(sent["meta"]["attachment"]["id"], file["id"]);
    // The download: inline image, no sniffing, sandboxed.
    let mut res = awc::Client::new()
        .get(srv.url(file["url"].as_str().expect("url")))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(h("content-type"), "image/png");
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert!(h("content-security-policy").contains("sandbox"));
    assert!(h("content-disposition").starts_with("inline"));
    assert_eq!(res.body().await.expect("body").as_ref(), PNG);
    // What is refused, with the reason.
    let (status, err) = upload(
        &srv,
        &visitor_auth,
        "x.svg",
        "image/svg+xml",
        b"<svg onload=alert(1)></svg>",
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    static BIG: [u8; 70_000] = [b'a'; 70_000];
    let (status, err) = upload(&srv, &visitor_auth, "big.txt", "text/plain", &BIG).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let (status, _) = upload(&srv, "Visitor nope", "x.png", "image/png", PNG).await;
    assert_eq!(status, 401);
    // Someone else's upload cannot be sent.
    let (mut intruder, _) = srv.new_visitor().await;
    intruder
        .send(
            json!({"type": "message", "client_id": "steal", "body": "", "attachment": file["id"]}),
        )
        .await;
    assert_eq!(intruder.next_of("error").await["code"], "bad_request");
    // The operator sends a file back; the visitor gets it.
    srv.take(cid, &ana).await;
    let (status, back) = upload(
        &srv,
        &format!("Bearer {ana}"),
        "plano.pdf",
        "application/pdf",
        b"%PDF-1.4 minimal",
    )
    .await;
    assert_eq!(status, 201, "{back}");
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/messages"),
            Some(&ana),
            json!({"client_id": "doc", "body": "el plano", "attachment": back["id"]}),
        )
        .await;
    assert_eq!(status, 200);
    let m = v.next_text().await;
    assert_eq!(m["meta"]["attachment"]["type"], "application/pdf");
    let res = awc::Client::new()
        .get(srv.url(back["url"].as_str().expect("url")))
        .send()
        .await
        .expect("get");
    let cd = res
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(cd.starts_with("attachment"), "{cd}");
    srv.stop().await;
}
both_backends!(files, files_go_both_ways_and_are_checked);

async fn export_and_erase_everything_about_a_contact(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("boss@example.com", "Boss", true).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (mut v, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"].as_str().expect("t").to_string();
    let cid = v.say("v1", "Mi DNI es 12345678Z").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(
        &mut v,
        "f",
        "name",
        json!({"name": "Paz", "email": "paz@example.com"}),
    )
    .await;
    let (_, file) = upload(
        &srv,
        &format!("Visitor {vtoken}"),
        "dni.png",
        "image/png",
        PNG,
    )
    .await;
    v.send(json!({"type": "message", "client_id": "img", "body": "", "attachment": file["id"]}))
        .await;
    v.next_of("ack").await;
    let contact = contact_of(&srv, &ana, cid).await["id"]
        .as_i64()
        .expect("id");
    srv.take(cid, &ana).await;
    srv.post(
        &format!("/api/conversations/{cid}/messages"),
        Some(&ana),
        json!({"client_id": "r", "body": "Gracias Paz"}),
    )
    .await;
    // The reply stays unread: its e-mail (CF8) waits in the outbox (no SMTP server here),
    // with the visitor's address, a subject and the text.
    srv.clock.advance(61_000);
    fire_timers(&srv);
    let emails = loop {
        let (_, emails) = srv
            .get(&format!("/api/conversations/{cid}/emails"), Some(&admin))
            .await;
        if emails.as_array().is_some_and(|e| !e.is_empty()) {
            break emails;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(emails[0]["to_address"], "paz@example.com");
    // Another reply: a timer pending, an e-mail to come; and a file uploaded, never sent.
    srv.post(
        &format!("/api/conversations/{cid}/messages"),
        Some(&ana),
        json!({"client_id": "r2", "body": "Su pedido sale hoy"}),
    )
    .await;
    let pending = pending_timers(&srv, cid).await;
    assert!(pending > 0, "an unread timer is pending");
    let (status, _) = upload(
        &srv,
        &format!("Visitor {vtoken}"),
        "borrador-nomina.png",
        "image/png",
        PNG,
    )
    .await;
    assert_eq!(status, 201);

    assert_eq!(
        srv.get(&format!("/api/contacts/{contact}/export"), Some(&ana))
            .await
            .0,
        403
    );
    let (status, doc) = srv
        .get(&format!("/api/contacts/{contact}/export"), Some(&admin))
        .await;
    assert_eq!(status, 200);
    let text = doc.to_string();
    for needle in [
        "Mi DNI es 12345678Z",
        "paz@example.com",
        "Gracias Paz",
        "dni.png",
        "borrador-nomina.png",
    ] {
        assert!(text.contains(needle), "export lacks {needle}");
    }
    assert_eq!(doc["files"][0]["size"], PNG.len());
    let mail = &doc["emails"][0];
    assert_eq!(mail["to_address"], "paz@example.com");
    assert_eq!(mail["subject"], emails[0]["subject"]);
    assert!(
        mail["text_body"]
            .as_str()
            .is_some_and(|t| t.contains("Gracias Paz")),
        "{mail}"
    );

    assert_eq!(
        srv.delete(&format!("/api/contacts/{contact}"), Some(&ana))
            .await
            .0,
        403
    );
    let (status, body) = srv
        .delete(&format!("/api/contacts/{contact}"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    // The open widget is told; its token no longer works.
    assert_eq!(v.next_of("error").await["code"], "unauthorized");
    let mut again = srv.ws("/ws/visitor").await;
    again.send(json!({"type": "hello", "token": vtoken})).await;
    assert_eq!(again.next_of("error").await["code"], "unauthorized");
    // Nothing personal remains, nor in search; the skeleton does.
    let (_, doc) = srv
        .get(&format!("/api/contacts/{contact}/export"), Some(&admin))
        .await;
    let text = doc.to_string();
    for needle in [
        "12345678Z",
        "paz@example.com",
        "Gracias Paz",
        "dni.png",
        "\"Paz\"",
    ] {
        assert!(!text.contains(needle), "erase left {needle}: {text}");
    }
    assert!(doc["contact"]["erased_at"].is_i64());
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&admin))
        .await;
    let bodies: Vec<&str> = conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(
        bodies.contains(&"opened") && bodies.contains(&"assigned"),
        "events remain: {bodies:?}"
    );
    let (_, hits) = srv.get("/api/search?q=12345678Z", Some(&admin)).await;
    assert_eq!(hits["hits"], json!([]));
    assert_eq!(
        srv.get(file["url"].as_str().expect("url"), None).await.0,
        404
    );
    // The e-mails are gone, and the pending one never comes.
    let (_, emails) = srv
        .get(&format!("/api/conversations/{cid}/emails"), Some(&admin))
        .await;
    assert_eq!(emails, json!([]));
    assert_eq!(pending_timers(&srv, cid).await, 0, "timers cancelled");
    srv.clock.advance(120_000);
    fire_timers(&srv);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let (_, emails) = srv
        .get(&format!("/api/conversations/{cid}/emails"), Some(&admin))
        .await;
    assert_eq!(emails, json!([]));
    srv.stop().await;
}
both_backends!(privacy, export_and_erase_everything_about_a_contact);

/// Fires the durable timers that are due (tests move the clock first).
fn fire_timers(srv: &TestServer) {
    srv.runtime()
        .timers
        .do_send(charla::runtime::timers::FireNow);
}

/// How many timers of a conversation are still to fire, whenever they fall due.
async fn pending_timers(srv: &TestServer, cid: i64) -> usize {
    let due = srv
        .runtime()
        .core
        .store
        .call(|s| s.due_timers(i64::MAX, 10_000))
        .await
        .expect("timers");
    due.iter().filter(|t| t.conversation_id == cid).count()
}

async fn a_link_by_hand_holds_when_the_visitor_fills_a_form(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    // Rosa, a customer.
    let (mut rosa, _) = srv.new_visitor().await;
    let rosa_cid = rosa.say("r1", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(
        &mut rosa,
        "rf",
        "name",
        json!({"name": "Rosa", "email": "rosa@example.com"}),
    )
    .await;
    let customer = contact_of(&srv, &ana, rosa_cid).await["id"]
        .as_i64()
        .expect("id");
    // A visitor the operator recognises as Rosa, on another device: linked by hand (XB2).
    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("v1", "soy Rosa, desde el móvil").await["conversation_id"]
        .as_i64()
        .expect("id");
    let (status, body) = srv
        .post(
            &format!("/api/conversations/{cid}/contact"),
            Some(&ana),
            json!({"contact_id": customer}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The visitor then fills the name form in that conversation, twice.
    for (id, fields) in [
        ("f1", json!({"name": "R."})),
        (
            "f2",
            json!({"name": "R.", "email": "rosa.movil@example.com"}),
        ),
    ] {
        let ack = form(&mut v, id, "name", fields).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let card = contact_of(&srv, &ana, cid).await;
        assert_eq!(card["id"], customer, "the link by hand holds");
        assert_eq!(
            card["name"], "Rosa",
            "the visitor's typing renames no customer"
        );
        assert!(
            !card.to_string().contains("rosa.movil@example.com"),
            "typed data is the visitor's, not the customer's: {card}"
        );
    }
    // The typed data went to the visitor's own contact, which the form event names.
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(conv["conversation"]["contact"]["id"], customer);
    let event = conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .rev()
        .find(|m| m["body"] == "form")
        .cloned()
        .expect("form event");
    let own = event["meta"]["contact"]["id"].as_i64().expect("id");
    assert_ne!(own, customer);
    let (_, card) = srv.get(&format!("/api/contacts/{own}"), Some(&ana)).await;
    assert_eq!(card["email"], "rosa.movil@example.com");
    srv.stop().await;
}
both_backends!(
    manual_link,
    a_link_by_hand_holds_when_the_visitor_fills_a_form
);

async fn the_card_is_editable_and_a_manual_merge_moves_everything(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (mut a, _) = srv.new_visitor().await;
    let first = a.say("a", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(&mut a, "f", "name", json!({"name": "Juan"})).await;
    let (mut b, _) = srv.new_visitor().await;
    let second = b.say("b", "hola otra vez").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(&mut b, "f", "name", json!({"name": "J. Pérez"})).await;
    let one = contact_of(&srv, &ana, first).await["id"]
        .as_i64()
        .expect("id");
    let two = contact_of(&srv, &ana, second).await["id"]
        .as_i64()
        .expect("id");
    // Edit the card (OC16): names, tags, address, a phone.
    let (status, c) = srv
        .patch(&format!("/api/contacts/{one}"), Some(&ana), json!({"first_name": "Juan", "last_name": "Pérez", "vip": true, "address": "Calle Mayor 1", "phone": "+34 611 222 333"}))
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["name"].as_str(), c["vip"].as_bool()),
        (Some("Juan Pérez"), Some(true))
    );
    let (status, _) = srv
        .patch(
            &format!("/api/contacts/{one}"),
            Some(&ana),
            json!({"phone": "abc"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = srv
        .patch(
            &format!("/api/contacts/{one}"),
            Some(&ana),
            json!({"shoe_size": 42}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, found) = srv.get("/api/contacts?q=611222", Some(&ana)).await;
    assert_eq!(found[0]["id"], one, "found by phone");
    // Merge the second into the first by hand.
    let (status, merged) = srv
        .post(
            &format!("/api/contacts/{two}/merge"),
            Some(&ana),
            json!({"into": one}),
        )
        .await;
    assert_eq!(status, 200, "{merged}");
    let (_, card) = srv.get(&format!("/api/contacts/{one}"), Some(&ana)).await;
    let mut convs: Vec<i64> = card["conversations"]
        .as_array()
        .expect("c")
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    convs.sort_unstable();
    assert_eq!(convs, vec![first, second]);
    assert_eq!(
        card["conversations"][0]["messages"], 1,
        "the card counts messages (OC20)"
    );
    assert_eq!(card["vip"], true);
    let (status, _) = srv
        .post(
            &format!("/api/contacts/{one}/merge"),
            Some(&ana),
            json!({"into": two}),
        )
        .await;
    assert_eq!(status, 400, "already one");
    // An operator's typed phone that another contact holds suggests once; decided, the
    // pair is not suggested again, whatever else they share.
    let (mut c, _) = srv.new_visitor().await;
    let third = c.say("c", "otra persona").await["conversation_id"]
        .as_i64()
        .expect("id");
    form(&mut c, "f", "name", json!({"name": "Otro"})).await;
    let other = contact_of(&srv, &ana, third).await["id"]
        .as_i64()
        .expect("id");
    let mut op = srv.operator_ws(&ana).await;
    srv.patch(
        &format!("/api/contacts/{other}"),
        Some(&ana),
        json!({"phone": "+34 611 222 333", "email": "x@example.com"}),
    )
    .await;
    let announced = op.next_of("suggestions").await;
    assert_eq!(announced["new"].as_array().map(Vec::len), Some(1));
    let (_, list) = srv.get("/api/suggestions", Some(&ana)).await;
    let mine: Vec<&Value> = list
        .as_array()
        .expect("l")
        .iter()
        .filter(|s| s["contact"]["id"] == other)
        .collect();
    assert_eq!(mine.len(), 1, "one suggestion for the pair: {list}");
    let sid = mine[0]["id"].as_i64().expect("id");
    srv.post(
        &format!("/api/suggestions/{sid}/reject"),
        Some(&ana),
        json!({}),
    )
    .await;
    srv.patch(
        &format!("/api/contacts/{one}"),
        Some(&ana),
        json!({"email": "x@example.com"}),
    )
    .await;
    let (_, list) = srv.get("/api/suggestions", Some(&ana)).await;
    assert!(
        list.as_array()
            .expect("l")
            .iter()
            .all(|s| s["contact"]["id"] != other && s["candidate"]["id"] != other),
        "a rejected pair is not suggested again: {list}"
    );
    // The second visitor's next form lands on the merged contact.
    form(&mut b, "g", "name", json!({"name": "Juan"})).await;
    assert_eq!(contact_of(&srv, &ana, second).await["id"], one);
    srv.stop().await;
}
both_backends!(
    card_and_merge,
    the_card_is_editable_and_a_manual_merge_moves_everything
);
