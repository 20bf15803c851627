//! The manufacturer register and the checks of an ÖKC order at import:
//! against the register (name, prefixes, the secure-area audit for soft
//! certificates) and against the CA configuration (approved prefixes, key
//! types); cancelling an unpaid order; a production refused for a reason
//! the operator fixes resumes.

mod common;

use common::{
    import_args, produce_args, register_manufacturer, run_on_journal, Run, Workspace, MANUFACTURER,
};

const VKN: &str = "4540536920";

fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_on_journal(ws, args, &[])
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The audit records, from `audit show --json` (one object per line).
fn audit_records(ws: &Workspace) -> Vec<serde_json::Value> {
    run(ws, &["audit", "show", "--json"])
        .ok()
        .stdout
        .lines()
        .map(json)
        .collect()
}

/// Replaces `from` by `to` in the `[okc_device]` section of the CA
/// configuration (the last section `ca init` writes).
fn edit_okc_profile(ws: &Workspace, from: &str, to: &str) {
    let path = "ca/certmint-ca.toml";
    let text = String::from_utf8(ws.read(path)).unwrap();
    let start = text.find("[okc_device]").expect("an [okc_device] section");
    let (head, section) = text.split_at(start);
    assert!(section.contains(from), "{from:?} in\n{section}");
    ws.write(
        path,
        format!("{head}{}", section.replacen(from, to, 1)).as_bytes(),
    );
}

fn order_state(ws: &Workspace, order: &str) -> String {
    let status = run(ws, &["order", "status", "--order", order, "--json"]).ok();
    json(&status.stdout)["state"].as_str().unwrap().to_owned()
}

#[test]
fn a_manufacturer_is_registered_once_listed_shown_and_changed_with_an_audit_record() {
    let ws = Workspace::new();
    register_manufacturer(|args| run(&ws, args), VKN, "JI,FU", false);

    let shown = json(
        &run(&ws, &["manufacturer", "show", "--vkn", VKN, "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(shown["vkn"], VKN);
    assert_eq!(shown["name"], MANUFACTURER);
    assert_eq!(shown["prefixes"], serde_json::json!(["FU", "JI"]));
    assert_eq!(shown["model_approval"], "GIB-ONAY-2026/17");
    assert!(shown["secure_area_audit"].is_null());
    let human = run(&ws, &["manufacturer", "show", "--vkn", VKN])
        .ok()
        .stdout;
    assert!(human.contains("none on record"), "{human}");

    // Once only: a second registration of the VKN is a conflict.
    let again = run(
        &ws,
        &[
            "manufacturer",
            "register",
            "--vkn",
            VKN,
            "--name",
            "Başka A.Ş.",
            "--prefixes",
            "KA",
            "--model-approval",
            "X-1",
        ],
    );
    assert_eq!(again.code, 9, "{}", again.stderr);
    assert!(
        again.stderr.contains("is registered already")
            && again.stderr.contains("manufacturer change"),
        "{}",
        again.stderr
    );
    let unknown = run(&ws, &["manufacturer", "show", "--vkn", "3230512384"]);
    assert_eq!(unknown.code, 8, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("manufacturer register"),
        "{}",
        unknown.stderr
    );

    // A second manufacturer; the list has both, by VKN.
    run(
        &ws,
        &[
            "manufacturer",
            "register",
            "--vkn",
            "3230512384",
            "--name",
            "Başka A.Ş.",
            "--prefixes",
            "KA",
            "--model-approval",
            "GIB-ONAY-2026/18",
            "--secure-area-audit",
            "2026-02-01",
        ],
    )
    .ok();
    let list = json(&run(&ws, &["manufacturer", "list", "--json"]).ok().stdout);
    let vkns: Vec<&str> = list["manufacturers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["vkn"].as_str().unwrap())
        .collect();
    assert_eq!(vkns, ["3230512384", VKN]);
    let table = run(&ws, &["manufacturer", "list"]).ok().stdout;
    assert_eq!(table.lines().count(), 3, "{table}");

    // A change is its own audited command naming old and new values.
    let changed = run(
        &ws,
        &[
            "manufacturer",
            "change",
            "--vkn",
            VKN,
            "--prefixes",
            "FU,JI,KB",
            "--secure-area-audit",
            "2026-11-30",
        ],
    )
    .ok();
    assert!(changed.stdout.contains("changed"), "{}", changed.stdout);
    let shown = json(
        &run(&ws, &["manufacturer", "show", "--vkn", VKN, "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(shown["prefixes"], serde_json::json!(["FU", "JI", "KB"]));
    assert_eq!(shown["secure_area_audit"], "2026-11-30");
    assert_eq!(shown["name"], MANUFACTURER, "what is not given stays");
    let records = audit_records(&ws);
    let change: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "manufacturer.changed")
        .collect();
    assert_eq!(change.len(), 1, "{records:?}");
    assert_eq!(change[0]["subject"], format!("manufacturer {VKN}"));
    assert_eq!(change[0]["operator"], "test-operator");
    let details = change[0]["details"].as_str().unwrap();
    assert!(
        details.contains(r#"prefixes: "FU,JI" -> "FU,JI,KB""#),
        "{details}"
    );
    assert!(
        details.contains(r#"secure-area audit: "" -> "2026-11-30""#),
        "{details}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["event"] == "manufacturer.registered")
            .count(),
        2
    );
    run(&ws, &["audit", "verify"]).ok();

    // Nothing to change, an unknown VKN and a bad value are refused, unaudited.
    let nothing = run(&ws, &["manufacturer", "change", "--vkn", VKN]);
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);
    let same = run(
        &ws,
        &[
            "manufacturer",
            "change",
            "--vkn",
            VKN,
            "--prefixes",
            "KB,JI,FU",
        ],
    );
    assert_eq!(same.code, 2, "{}", same.stderr);
    let unknown = run(
        &ws,
        &[
            "manufacturer",
            "change",
            "--vkn",
            "1234567890",
            "--name",
            "X",
        ],
    );
    assert_eq!(unknown.code, 8, "{}", unknown.stderr);
    let future = run(
        &ws,
        &[
            "manufacturer",
            "change",
            "--vkn",
            VKN,
            "--secure-area-audit",
            "2999-01-01",
        ],
    );
    assert_eq!(future.code, 3, "{}", future.stderr);
    assert_eq!(audit_records(&ws).len(), records.len());
}

#[test]
fn an_order_is_checked_against_the_register_at_import() {
    let ws = Workspace::with_ca(&[]);
    ws.write("list.txt", b"FU00022547\nFU00022548\n");
    let list = ws.path("list.txt").display().to_string();

    // Unregistered: refused, saying how to register.
    let unregistered = run(&ws, &import_args("FU", &list, &[]));
    assert_eq!(unregistered.code, 8, "{}", unregistered.stderr);
    assert!(
        unregistered.stderr.contains("is not registered")
            && unregistered
                .stderr
                .contains("certmint manufacturer register"),
        "{}",
        unregistered.stderr
    );

    register_manufacturer(|args| run(&ws, args), VKN, "FU,JI", false);

    // Another name than the registered one.
    let renamed = run(
        &ws,
        &[
            "order",
            "import",
            "--manufacturer",
            "Başka Yazarkasa A.Ş.",
            "--manufacturer-vkn",
            VKN,
            "--ca",
            "ca",
            "--target",
            "hsm",
            "--serials",
            &list,
        ],
    );
    assert_eq!(renamed.code, 3, "{}", renamed.stderr);
    assert!(
        renamed.stderr.contains("is registered as"),
        "{}",
        renamed.stderr
    );

    // A prefix outside the register.
    let outside = run(&ws, &import_args("FU,KA", &list, &["--target", "hsm"]));
    assert_eq!(outside.code, 3, "{}", outside.stderr);
    assert!(
        outside.stderr.contains("KA") && outside.stderr.contains("not approved for manufacturer"),
        "{}",
        outside.stderr
    );

    // Soft certificates without a passed secure-area audit on record.
    let soft = run(&ws, &import_args("FU", &list, &["--target", "soft"]));
    assert_eq!(soft.code, 3, "{}", soft.stderr);
    assert!(
        soft.stderr.contains("secure-area audit") && soft.stderr.contains("manufacturer change"),
        "{}",
        soft.stderr
    );
    // ÖKC orders are checked against a CA configuration.
    let no_ca = run(
        &ws,
        &[
            "order",
            "import",
            "--manufacturer-vkn",
            VKN,
            "--serials",
            &list,
            "--target",
            "hsm",
        ],
    );
    assert_eq!(no_ca.code, 2, "{}", no_ca.stderr);
    assert!(no_ca.stderr.contains("--ca"), "{}", no_ca.stderr);
    assert_eq!(
        json(&run(&ws, &["order", "list", "--json"]).ok().stdout)["orders"],
        serde_json::json!([])
    );

    // Without --manufacturer and --prefixes: the registered name and prefixes.
    let imported = run(
        &ws,
        &[
            "order",
            "import",
            "--manufacturer-vkn",
            VKN,
            "--ca",
            "ca",
            "--target",
            "hsm",
            "--serials",
            &list,
        ],
    )
    .ok();
    assert!(
        imported.stdout.contains("Imported order 1"),
        "{}",
        imported.stdout
    );
    let order = json(
        &run(&ws, &["order", "status", "--order", "1", "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(order["manufacturer"], MANUFACTURER);
    assert_eq!(order["prefixes"], serde_json::json!(["FU", "JI"]));

    // Once the audit is on record, soft orders are taken.
    run(
        &ws,
        &[
            "manufacturer",
            "change",
            "--vkn",
            VKN,
            "--secure-area-audit",
            "2026-11-30",
        ],
    )
    .ok();
    ws.write("more.txt", b"JI00022549\n");
    let more = ws.path("more.txt").display().to_string();
    run(
        &ws,
        &import_args("JI", &more, &["--target", "soft", "--additional-to", "1"]),
    )
    .ok();
}

#[test]
fn an_order_is_checked_against_the_ca_configuration_at_import() {
    let ws = Workspace::with_ca(&[]);
    register_manufacturer(|args| run(&ws, args), VKN, "FU,JI", true);
    ws.write("list.txt", b"FU00022547\nJI00022548\n");
    let list = ws.path("list.txt").display().to_string();
    edit_okc_profile(
        &ws,
        "approved_prefixes = []",
        "approved_prefixes = [\"FU\"]",
    );

    // JI is registered for the manufacturer, but not approved by the CA.
    let refused = run(&ws, &import_args("FU,JI", &list, &[]));
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("JI")
            && refused
                .stderr
                .contains("CA configuration's approved prefixes"),
        "{}",
        refused.stderr
    );
    // A key type the profile does not accept.
    ws.write("fu.txt", b"FU00022547\n");
    let fu = ws.path("fu.txt").display().to_string();
    let rsa = run(&ws, &import_args("FU", &fu, &["--key-type", "rsa3072"]));
    assert_eq!(rsa.code, 3, "{}", rsa.stderr);
    assert!(
        rsa.stderr.contains("key type rsa3072 is not accepted")
            && rsa.stderr.contains("p256, p384, rsa2048"),
        "{}",
        rsa.stderr
    );
    edit_okc_profile(
        &ws,
        "\"p256\",\n    \"p384\",\n    \"rsa2048\",",
        "\"p384\",",
    );
    let p256 = run(&ws, &import_args("FU", &fu, &["--key-type", "p256"]));
    assert_eq!(p256.code, 3, "{}", p256.stderr);
    assert!(p256.stderr.contains("it accepts p384"), "{}", p256.stderr);
    assert_eq!(
        json(&run(&ws, &["order", "list", "--json"]).ok().stdout)["orders"],
        serde_json::json!([])
    );
    // What the configuration approves is imported.
    run(&ws, &import_args("FU", &fu, &["--key-type", "p384"])).ok();
}

#[test]
fn an_unpaid_order_is_cancelled_and_its_serials_freed_a_paid_one_is_not() {
    let ws = Workspace::with_ca(&[]);
    register_manufacturer(|args| run(&ws, args), VKN, "FU", true);
    ws.write("list.txt", b"FU00022547\nFU00022548\n");
    let list = ws.path("list.txt").display().to_string();
    run(&ws, &import_args("FU", &list, &[])).ok();

    let cancelled = run(&ws, &["order", "cancel", "--order", "1"]).ok();
    assert!(
        cancelled.stdout.contains("2 serial(s) are free"),
        "{}",
        cancelled.stdout
    );
    assert_eq!(order_state(&ws, "1"), "cancelled");
    let record = audit_records(&ws)
        .into_iter()
        .find(|r| r["event"] == "order.cancelled")
        .expect("the cancellation is audited");
    assert_eq!(record["subject"], "order 1");
    assert_eq!(record["operator"], "test-operator");
    // A cancelled order is not paid, produced or cancelled again.
    let pay = run(&ws, &["order", "pay", "--order", "1"]);
    assert_ne!(pay.code, 0, "{}", pay.stderr);
    let again = run(&ws, &["order", "cancel", "--order", "1"]);
    assert_eq!(
        again.code, 9,
        "a state that refuses the request conflicts with the record"
    );
    assert!(again.stderr.contains("is cancelled"), "{}", again.stderr);

    // Its serials go into another order.
    let second = run(&ws, &import_args("FU", &list, &["--json"])).ok();
    assert_eq!(json(&second.stdout)["accepted"], 2);
    run(&ws, &["order", "pay", "--order", "2"]).ok();
    let paid = run(&ws, &["order", "cancel", "--order", "2"]);
    assert_eq!(paid.code, 9, "{}", paid.stderr);
    assert!(
        paid.stderr.contains("order 2 is paid")
            && paid.stderr.contains("no cancellation or refund"),
        "{}",
        paid.stderr
    );
    assert_eq!(order_state(&ws, "2"), "paid");
    let missing = run(&ws, &["order", "cancel", "--order", "9"]);
    assert_eq!(missing.code, 8, "{}", missing.stderr);
    run(&ws, &["audit", "verify"]).ok();
}

#[test]
fn a_production_refused_for_the_ca_configuration_resumes_once_it_is_fixed() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    register_manufacturer(|args| run(&ws, args), VKN, "FU", true);
    ws.write("list.txt", b"FU00022547\nFU00022548\nFU00022549\n");
    let list = ws.path("list.txt").display().to_string();
    run(&ws, &import_args("FU", &list, &[])).ok();
    run(&ws, &["order", "pay", "--order", "1"]).ok();

    // The CA configuration changed after the import: the lint refuses the
    // devices before signing, and the order stays producing, nothing issued.
    edit_okc_profile(
        &ws,
        "approved_prefixes = []",
        "approved_prefixes = [\"JI\"]",
    );
    let refused = run(&ws, &produce_args("1", &[]));
    assert_eq!(refused.code, 4, "refused at lint: {}", refused.stderr);
    assert!(
        refused.stderr.contains("refused before signing")
            && refused
                .stderr
                .contains("not among the approved prefixes JI"),
        "{}",
        refused.stderr
    );
    assert_eq!(order_state(&ws, "1"), "producing");
    let cancel = run(&ws, &["order", "cancel", "--order", "1"]);
    assert_ne!(cancel.code, 0, "a paid order is never cancelled");

    // Fixed: the same command resumes and finishes the order.
    edit_okc_profile(
        &ws,
        "approved_prefixes = [\"JI\"]",
        "approved_prefixes = [\"FU\", \"JI\"]",
    );
    let resumed = run(&ws, &produce_args("1", &["--json"])).ok();
    let report = json(&resumed.stdout);
    assert_eq!(report["devices"], 3);
    assert_eq!(report["produced_now"], 3);
    assert_eq!(order_state(&ws, "1"), "delivered");
    for serial in ["FU00022547", "FU00022548", "FU00022549"] {
        let cert = format!("out/order-1/certs/{serial}.pem");
        assert_eq!(ws.verify_okc_chain(&cert).code, 0, "{cert}");
    }
    run(&ws, &["audit", "verify"]).ok();
}

/// `audit verify` holds the register to its audit records: an entry added
/// behind the log's back, or one whose registration record remains after
/// the entry was deleted, is a break (exit 6) naming the manufacturer.
#[test]
fn audit_verify_holds_the_register_to_its_records() {
    let ws = Workspace::new();
    register_manufacturer(|args| run(&ws, args), VKN, "FU", false);
    run(&ws, &["audit", "verify"]).ok();
    let db = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
    db.execute(
        "INSERT INTO manufacturers (vkn, name, prefixes, model_approval, registered_at)
         VALUES ('3230512384', 'Başka A.Ş.', 'KA', 'X-1', '2026-12-05T00:00:00Z')",
        [],
    )
    .unwrap();
    let added = run(&ws, &["audit", "verify"]);
    assert_eq!(added.code, 6, "{}", added.stderr);
    assert!(
        added
            .stderr
            .contains("manufacturer 3230512384 has no audit record of its registration"),
        "{}",
        added.stderr
    );
    db.execute("DELETE FROM manufacturers", []).unwrap();
    let deleted = run(&ws, &["audit", "verify"]);
    assert_eq!(deleted.code, 6, "{}", deleted.stderr);
    assert!(
        deleted.stderr.contains(&format!(
            "records the registration of manufacturer {VKN}, which the journal no longer has"
        )),
        "{}",
        deleted.stderr
    );
}
