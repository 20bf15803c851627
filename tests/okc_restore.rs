//! Certificate files are written without fsync during production (the
//! journal holds the same DER): the delivery checks each one against the
//! journal and rewrites what a crash lost or tore, then syncs. Here a run is
//! stopped part way, the certificate files of verified devices are deleted,
//! truncated and overwritten, and the run that finishes the order must
//! deliver every file exactly as the journal issued it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use certmint::ca::{self, CaDirectory, InitOptions};
use certmint::calendar::BusinessCalendar;
use certmint::ids::PrefixTable;
use certmint::journal::{
    Application, Journal, NewOrder, OrderId, OrderKind, OrderState, SqlJournal, Target,
};
use certmint::keyref::Unlock;
use certmint::order::serial_list::SerialListReader;
use certmint::production::key_target::soft::SoftTarget;
use certmint::production::{delivery_folder, Production};
use certmint::profile::{ProductLine, Profile, ProfileName};
use certmint::signer::KeyType;

const DEVICES: usize = 200;

#[test]
fn delivery_rewrites_certificate_files_a_crash_lost_or_tore() {
    let dir = tempfile::tempdir().unwrap();
    let now = certmint::issue::validity::now().unwrap();
    let mut options = InitOptions::kamu_sm_defaults(now);
    options.root_key = ca::CaKey::Generate(KeyType::EcP256);
    options.mali_muhur.key = ca::CaKey::Generate(KeyType::EcP256);
    options.okc.key = ca::CaKey::Generate(KeyType::EcP256);
    let mut journal = SqlJournal::open(&dir.path().join("journal.sqlite")).unwrap();
    ca::init(
        &dir.path().join("ca"),
        &options,
        &mut ca::CaLedger {
            journal: &mut journal,
            operator: "test",
        },
    )
    .unwrap();
    let directory = CaDirectory::open(
        &dir.path().join("ca"),
        ProductLine::Okc,
        None,
        &Unlock::default(),
    )
    .unwrap();
    let profile = Profile::from_config(ProfileName::OkcDevice, &directory.config).unwrap();

    let list: String = (0..DEVICES)
        .map(|i| format!("FU{:08}\n", 20_000_000 + i))
        .collect();
    let order = NewOrder {
        kind: OrderKind::Okc,
        manufacturer: "Örnek Yazarkasa A.Ş.".into(),
        manufacturer_vkn: Some(certmint::ids::TaxpayerId::Vkn(
            certmint::ids::Vkn::parse("4540536920", certmint::ids::IdMode::Production).unwrap(),
        )),
        prefixes: vec!["FU".into()],
        application: Application::Initial,
        target: Target::Soft,
        key_type: certmint::signer::KeyType::EcP256,
        source: "test".into(),
        operator: "test".into(),
    };
    let reader = SerialListReader::new(list.as_bytes(), PrefixTable::new(["FU"]).unwrap());
    certmint::order::import::import_order(
        &mut journal,
        &order,
        &mut reader.map(|item| item.map(certmint::order::import::Listed::from)),
        false,
    )
    .unwrap();
    journal.mark_paid(OrderId(1), "test").unwrap();
    let journal = Mutex::new(journal);
    let calendar = BusinessCalendar::turkey();
    let out = dir.path().join("out");
    let chain = vec![
        directory.ca.certificate_der().to_vec(),
        directory.root_der.clone(),
    ];
    let target = SoftTarget::new(&chain).unwrap();
    let production = |stop: Arc<AtomicBool>, on_device: &(dyn Fn() + Sync)| {
        Production {
            order: OrderId(1),
            ca: &directory.ca,
            profile: &profile,
            chain: chain.clone(),
            out: out.clone(),
            workers: 2,
            operator: "test".into(),
            stop,
            on_device,
            calendar: &calendar,
            lease_wait: std::time::Duration::ZERO,
        }
        .run(&journal, &target)
        .unwrap()
    };

    // A first run, stopped after some devices (as Ctrl-C would).
    let stop = Arc::new(AtomicBool::new(false));
    let done = AtomicU64::new(0);
    let stop_soon = || {
        if done.fetch_add(1, Ordering::SeqCst) == 40 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let first = production(stop.clone(), &stop_soon);
    assert!(first.stopped, "{first:?}");
    let summary = journal.lock().unwrap().order(OrderId(1)).unwrap();
    assert_eq!(summary.state, OrderState::Producing);
    assert!(summary.verified >= 40, "{summary:?}");

    // What a crash can do to files written without fsync.
    let issued = journal.lock().unwrap().issued(OrderId(1), 0, 3).unwrap();
    let certs = delivery_folder(&out, OrderId(1)).join("certs");
    let [(_, lost), (_, torn), (_, wrong)] = &issued[..] else {
        panic!("{issued:?}")
    };
    std::fs::remove_file(certs.join(format!("{}.pem", lost.device_serial))).unwrap();
    std::fs::write(
        certs.join(format!("{}.der", torn.device_serial)),
        &torn.der[..torn.der.len() / 2],
    )
    .unwrap();
    std::fs::write(
        certs.join(format!("{}.pem", wrong.device_serial)),
        b"-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();

    let last = production(Arc::new(AtomicBool::new(false)), &|| {});
    assert!(last.delivery.is_some(), "{last:?}");
    let issued = journal
        .lock()
        .unwrap()
        .issued(OrderId(1), 0, DEVICES)
        .unwrap();
    assert_eq!(issued.len(), DEVICES);
    for (_, record) in issued {
        let der = std::fs::read(certs.join(format!("{}.der", record.device_serial))).unwrap();
        let pem =
            std::fs::read_to_string(certs.join(format!("{}.pem", record.device_serial))).unwrap();
        assert_eq!(der, record.der, "{}", record.device_serial);
        assert_eq!(
            pem,
            certmint::pem::certificate(&record.der),
            "{}",
            record.device_serial
        );
    }
}
