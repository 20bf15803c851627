//! One set-up for every production run (`production::setup`): the order
//! is checked before its key target opens, claimed while the set-up lives
//! and free again when it is dropped; the issuing CA, profile and chain are
//! the CA directory's; the run it makes goes through the pipeline. The
//! commands that use it (`okc produce`, `card station`) refuse what the
//! set-up refuses, with the same messages.
//! Real parts: a CA made by `certmint ca init`, the SQLite journal, the
//! real binary as a second producer, OpenSSL checking the certificates.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use certmint::error::ErrorKind;
use certmint::journal::{Journal, OrderId, SqlJournal, Target};
use certmint::keyref::Unlock;
use certmint::production::key_target::soft::SoftTarget;
use certmint::production::setup::{OpenedTarget, ProductionSetup, SetupError, SetupRequest};
use certmint::profile::{ProductLine, ProfileName};
use common::{import_and_pay, import_args, run_on_journal, Run, Workspace};

const SERIALS: [&str; 3] = ["FU00022547", "FU00022548", "FU00022549"];

fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_on_journal(ws, args, &[])
}

/// A CA, and SERIALS imported (soft target) and paid as order 1.
fn paid_order() -> Workspace {
    let ws = Workspace::with_ca(&[]);
    ws.write("list.txt", (SERIALS.join("\n") + "\n").as_bytes());
    let list = ws.path("list.txt").display().to_string();
    import_and_pay(|args| run(&ws, args), "FU,JI", &list, "1", &[]);
    ws
}

/// What `okc produce` asks of the set-up for `order`, without Ctrl-C (the
/// test process keeps its own).
fn okc_request(ca: &Path, order: i64) -> SetupRequest<'_> {
    SetupRequest {
        order: OrderId(order),
        profile: Some(ProfileName::OkcDevice),
        target: None,
        ca_dir: ca,
        ca_unlock: Unlock::default(),
        id_mode: certmint::ids::IdMode::Production,
        closed_days: None,
        operator: "setup-test".into(),
        lease_wait: std::time::Duration::ZERO,
        on_ctrl_c: None,
    }
}

fn journal_of(ws: &Workspace) -> Mutex<SqlJournal> {
    Mutex::new(SqlJournal::open(&ws.path("journal.sqlite")).unwrap())
}

#[test]
fn a_set_up_run_holds_its_order_until_dropped_and_produces_it_through_the_pipeline() {
    let ws = paid_order();
    let journal = journal_of(&ws);
    let ca = ws.path("ca");
    let opened = AtomicU64::new(0);
    let (setup, ()) = ProductionSetup::open(&journal, okc_request(&ca, 1), |order| {
        opened.fetch_add(1, Ordering::SeqCst);
        assert_eq!(order.target, Target::Soft);
        Ok::<_, SetupError>(OpenedTarget {
            target: (),
            workers: 2,
        })
    })
    .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert_eq!(setup.order.devices, 3);
    assert_eq!(setup.workers, 2);
    assert_eq!(setup.issuing.profile.name, ProfileName::OkcDevice);
    // The chain is the CA directory's ÖKC issuing CA, then its root.
    let overview = certmint::ca::overview(&ca).unwrap();
    let okc = overview
        .issuing
        .iter()
        .find(|issuing| issuing.line == ProductLine::Okc)
        .unwrap();
    assert_eq!(
        setup.issuing.chain,
        vec![okc.certificate_der.clone(), overview.root_der.clone()]
    );
    assert_eq!(setup.issuing.ca.certificate_der(), okc.certificate_der);
    assert_eq!(setup.issuing.shared_issuing_ca_warning, None);

    // While the set-up lives, the order is claimed: its lease is on record,
    // shared (soft keys: other producers may join it, each on the devices
    // it claims).
    let leases = journal.lock().unwrap().leases(OrderId(1)).unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].holder.operator, "setup-test");
    assert_eq!(leases[0].sharing, certmint::journal::Sharing::Shared);

    // The run it makes certifies every device once, through the pipeline.
    let devices_done = AtomicU64::new(0);
    let on_device = || {
        devices_done.fetch_add(1, Ordering::SeqCst);
    };
    let production = setup.production(ws.path("out"), &on_device);
    let report = production
        .run(&journal, &SoftTarget::new(&setup.issuing.chain).unwrap())
        .unwrap();
    assert_eq!(report.produced_now, 3);
    assert_eq!(devices_done.load(Ordering::SeqCst), 3);
    assert!(report.delivery.is_some(), "{report:?}");
    for serial in SERIALS {
        let cert = format!("out/order-1/certs/{serial}.pem");
        assert_eq!(ws.verify_okc_chain(&cert).code, 0, "{cert}");
    }
    drop(setup);

    // Dropped, the order is free: the command finds it done.
    let again = run(
        &ws,
        &[
            "okc", "produce", "--order", "1", "--ca", "ca", "--out", "out",
        ],
    )
    .ok();
    assert!(
        again
            .stdout
            .contains("Order 1: 0 certified now, 3 before, 3 in all."),
        "{}",
        again.stdout
    );
}

#[test]
fn an_order_the_command_cannot_produce_is_refused_before_its_key_target_opens() {
    let ws = Workspace::with_ca(&[]);
    ws.write("list.txt", b"FU00022547\n");
    let list = ws.path("list.txt").display().to_string();
    common::ensure_manufacturer(|args| run(&ws, args));
    run(&ws, &import_args("FU,JI", &list, &[])).ok();
    let journal = journal_of(&ws);
    let ca = ws.path("ca");
    let never = |_: &certmint::journal::OrderSummary| -> Result<OpenedTarget<()>, SetupError> {
        panic!("the key target opened for an order the command cannot produce")
    };

    // Unpaid.
    let Err(unpaid) = ProductionSetup::open(&journal, okc_request(&ca, 1), never) else {
        panic!("an unpaid order was set up");
    };
    assert!(
        unpaid.to_string().contains(
            "order 1: is not paid: production refuses an unpaid order (record the payment with `certmint order pay`)"
        ),
        "{unpaid}"
    );
    assert_eq!(unpaid.kind(), ErrorKind::Failure);

    // Paid, but asked of the seal command: the usage error names the
    // command that produces it.
    run(&ws, &["order", "pay", "--order", "1"]).ok();
    let mut seals = okc_request(&ca, 1);
    seals.profile = Some(ProfileName::MaliMuhur);
    seals.target = Some(Target::Hsm);
    let Err(wrong) = ProductionSetup::open(&journal, seals, never) else {
        panic!("an ÖKC order was set up for seals");
    };
    assert!(
        wrong
            .to_string()
            .contains("order 1: is an ÖKC order: produce it with `certmint okc produce --order 1`"),
        "{wrong}"
    );
    assert_eq!(wrong.kind(), ErrorKind::Usage);
    assert_eq!(certmint::error::kind_of(&wrong), ErrorKind::Usage);

    // Neither refusal kept the order: it is set up at once.
    let (setup, ()) = ProductionSetup::open(&journal, okc_request(&ca, 1), |_| {
        Ok::<_, SetupError>(OpenedTarget {
            target: (),
            workers: 1,
        })
    })
    .unwrap();
    assert_eq!(setup.order.devices, 1);
}

#[test]
fn the_card_station_refuses_an_order_it_cannot_produce_before_asking_for_card_secrets() {
    let ws = paid_order();
    // No management key, PIN or PUK given, and no reader: the order is
    // refused first, by the same rule as every production command.
    let soft = run(&ws, &["card", "station", "--order", "1", "--ca", "ca"]);
    assert_eq!(soft.code, 2, "{}", soft.stderr);
    assert!(
        soft.stderr
            .contains("order 1: was ordered for the soft target, not card"),
        "{}",
        soft.stderr
    );

    ws.write("more.txt", b"JI00000001\n");
    let more = ws.path("more.txt").display().to_string();
    run(&ws, &import_args("FU,JI", &more, &["--target", "card"])).ok();
    let unpaid = run(&ws, &["card", "station", "--order", "2", "--ca", "ca"]);
    assert_eq!(unpaid.code, 1, "{}", unpaid.stderr);
    assert!(
        unpaid.stderr.contains("order 2: is not paid"),
        "{}",
        unpaid.stderr
    );
}

#[test]
fn a_bad_closed_days_file_is_refused_naming_its_line_and_leaves_the_order_free() {
    let ws = paid_order();
    ws.write("closed.txt", b"2026-13-45\n");
    let refused = run(
        &ws,
        &[
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--out",
            "out",
            "--closed-days",
            "closed.txt",
        ],
    );
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("closed.txt: closed-days file, line 1: "),
        "{}",
        refused.stderr
    );
    assert!(!ws.exists("out/order-1/certs/FU00022547.pem"));

    ws.write("closed.txt", b"2026-12-31\n");
    let produced = run(
        &ws,
        &[
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--out",
            "out",
            "--closed-days",
            "closed.txt",
        ],
    )
    .ok();
    assert!(
        produced
            .stdout
            .contains("Order 1: 3 certified now, 0 before, 3 in all."),
        "{}",
        produced.stdout
    );
    assert_eq!(
        ws.verify_okc_chain("out/order-1/certs/FU00022547.pem").code,
        0
    );
}
