use der::{Decode, Encode};
use time::macros::datetime;
use time::OffsetDateTime;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason};
use x509_cert::time::Time;

use super::*;
use crate::ca::{self, CaDirectory, CaKey, InitOptions};
use crate::keyref::Unlock;
use crate::revocation::RevocationReason;
use crate::signer::KeyType;

/// A CA directory with P-256 keys, opened.
fn ca_directory() -> (tempfile::TempDir, CaDirectory) {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::issue::validity::now().unwrap();
    let mut options = InitOptions::kamu_sm_defaults(now);
    options.root_key = CaKey::Generate(KeyType::EcP256);
    options.mali_muhur.key = CaKey::Generate(KeyType::EcP256);
    options.okc.key = CaKey::Generate(KeyType::EcP256);
    let mut journal = crate::journal::SqlJournal::open_at(&crate::journal::JournalAddress::File(
        dir.path().join("ca-journal.sqlite"),
    ))
    .unwrap();
    let mut ledger = ca::CaLedger {
        journal: &mut journal,
        operator: "op",
    };
    ca::init(&dir.path().join("ca"), &options, &mut ledger).unwrap();
    let directory = CaDirectory::open(
        &dir.path().join("ca"),
        crate::profile::ProductLine::MaliMuhur,
        None,
        &Unlock::default(),
    )
    .unwrap();
    (dir, directory)
}

fn decode(der: &[u8]) -> CertificateList {
    CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der).unwrap()
}

fn info(number: u64) -> CrlInfo {
    CrlInfo {
        number,
        this_update: datetime!(2026-12-01 10:00:00.5 UTC),
        next_update: datetime!(2026-12-08 10:00:00 UTC),
    }
}

fn entry(serial: &[u8], reason: RevocationReason) -> RevokedEntry {
    RevokedEntry {
        serial: serial.to_vec(),
        revoked_at: datetime!(2026-11-30 09:15:00 UTC),
        reason,
        invalidity_date: None,
    }
}

fn crl_of(
    directory: &CaDirectory,
    info: CrlInfo,
    entries: &[RevokedEntry],
) -> Result<SignedCrl, CrlError> {
    let issuer = CrlIssuer::new(directory.ca.certificate_der(), directory.ca.signer())?;
    build(
        &issuer,
        info,
        entries.iter().cloned().map(Ok::<_, CrlError>),
    )
    .map_err(|e| match e {
        BuildError::Crl(e) | BuildError::Source(e) => e,
    })
}

fn lint_names(error: CrlError) -> Vec<&'static str> {
    match error {
        CrlError::Lint(report) => report.0.iter().map(|f| f.lint).collect(),
        other => panic!("not a lint refusal: {other}"),
    }
}

#[test]
fn a_crl_decodes_as_rfc_5280_says_with_its_reasons_dates_and_extensions() {
    let (_dir, directory) = ca_directory();
    let mut compromised = entry(&[0x41, 2], RevocationReason::KeyCompromise);
    compromised.invalidity_date = Some(datetime!(2026-11-20 00:00:00 UTC));
    let entries = [
        entry(&[0x41, 1], RevocationReason::Unspecified),
        compromised,
        entry(&[0x00, 0x80, 0x01], RevocationReason::Superseded),
    ];
    let crl = crl_of(&directory, info(7), &entries).unwrap();
    assert_eq!((crl.entries(), crl.number()), (3, 7));
    let list = decode(crl.der());
    let tbs = &list.tbs_cert_list;
    assert_eq!(tbs.version, x509_cert::Version::V2);
    assert_eq!(
        tbs.issuer.to_der().unwrap(),
        subject_der(directory.ca.certificate_der()).unwrap()
    );
    // Fractions of a second are dropped; 2026 is UTCTime.
    assert!(matches!(tbs.this_update, Time::UtcTime(_)));
    assert_eq!(
        tbs.this_update.to_unix_duration().as_secs() as i64,
        info(7).this_update.unix_timestamp()
    );
    let revoked = tbs.revoked_certificates.as_ref().unwrap();
    let serials: Vec<&[u8]> = revoked.iter().map(|r| r.serial_number.as_bytes()).collect();
    assert_eq!(serials, [&[0x41, 1][..], &[0x41, 2], &[0x00, 0x80, 0x01]]);
    // Unspecified: no reasonCode, and so no extensions at all.
    assert_eq!(revoked[0].crl_entry_extensions, None);
    let second = revoked[1].crl_entry_extensions.as_ref().unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(
        CrlReason::from_der(second[0].extn_value.as_bytes()).unwrap(),
        CrlReason::KeyCompromise
    );
    let invalidity = der::asn1::GeneralizedTime::from_der(second[1].extn_value.as_bytes()).unwrap();
    assert_eq!(
        invalidity.to_unix_duration().as_secs() as i64,
        datetime!(2026-11-20 00:00:00 UTC).unix_timestamp()
    );
    let third = revoked[2].crl_entry_extensions.as_ref().unwrap();
    assert_eq!(
        CrlReason::from_der(third[0].extn_value.as_bytes()).unwrap(),
        CrlReason::Superseded
    );

    let extensions = tbs.crl_extensions.as_ref().unwrap();
    let aki = AuthorityKeyIdentifier::from_der(extensions[0].extn_value.as_bytes()).unwrap();
    assert_eq!(
        aki.key_identifier.unwrap().as_bytes(),
        directory.ca.identity().key_identifier().unwrap()
    );
    let number = CrlNumber::from_der(extensions[1].extn_value.as_bytes()).unwrap();
    assert_eq!(number.0.as_bytes(), [7]);
    assert!(extensions.iter().all(|e| !e.critical));

    // The signature verifies over the TBS as x509-cert encodes it again.
    crate::signer::verify_signature(
        directory.ca.signer().public_key_der(),
        directory.ca.signer().algorithm(),
        &tbs.to_der().unwrap(),
        list.signature.raw_bytes(),
    )
    .unwrap();
    assert_eq!(list.to_der().unwrap(), crl.der());
}

#[test]
fn an_empty_crl_leaves_out_the_revoked_certificates() {
    let (_dir, directory) = ca_directory();
    let crl = crl_of(&directory, info(1), &[]).unwrap();
    let list = decode(crl.der());
    assert_eq!(list.tbs_cert_list.revoked_certificates, None);
    assert_eq!(crl.entries(), 0);
}

/// Lists long enough for every length form of the headers (short, one and
/// two octets, three for the list) decode with x509-cert.
#[test]
fn lists_of_every_header_length_decode() {
    let (_dir, directory) = ca_directory();
    for count in [1usize, 2, 3, 5, 300, 2_000] {
        let entries: Vec<RevokedEntry> = (0..count)
            .map(|i| {
                entry(
                    &[0x40, (i >> 8) as u8, i as u8],
                    RevocationReason::CessationOfOperation,
                )
            })
            .collect();
        let crl = crl_of(&directory, info(count as u64), &entries).unwrap();
        let list = decode(crl.der());
        assert_eq!(
            list.tbs_cert_list.revoked_certificates.unwrap().len(),
            count
        );
    }
}

#[test]
fn unsorted_and_duplicate_serials_are_refused_before_signing() {
    let (_dir, directory) = ca_directory();
    let unsorted = [
        entry(&[0x42], RevocationReason::Superseded),
        entry(&[0x41], RevocationReason::Superseded),
    ];
    let error = crl_of(&directory, info(1), &unsorted).unwrap_err();
    assert_eq!(error.kind(), crate::error::ErrorKind::LintRefused);
    assert_eq!(lint_names(error), ["crl.entries_sorted"]);
    // A longer serial is the larger number, whatever its first octet.
    let by_value = [
        entry(&[0x7f], RevocationReason::Superseded),
        entry(&[0x01, 0x00], RevocationReason::Superseded),
    ];
    crl_of(&directory, info(1), &by_value).unwrap();
    let duplicate = [
        entry(&[0x41], RevocationReason::Superseded),
        entry(&[0x41], RevocationReason::KeyCompromise),
    ];
    assert_eq!(
        lint_names(crl_of(&directory, info(1), &duplicate).unwrap_err()),
        ["crl.duplicate_serial"]
    );
}

#[test]
fn serials_that_are_not_positive_minimal_integers_of_at_most_20_octets_are_refused() {
    let (_dir, directory) = ca_directory();
    for bad in [
        vec![],
        vec![0x80],
        vec![0x00],
        vec![0x00, 0x7f],
        vec![0x41; 21],
    ] {
        let error = crl_of(
            &directory,
            info(1),
            &[entry(&bad, RevocationReason::Superseded)],
        )
        .unwrap_err();
        assert_eq!(lint_names(error), ["crl.serial"], "{bad:?}");
    }
    crl_of(
        &directory,
        info(1),
        &[entry(&[0x41; 20], RevocationReason::Superseded)],
    )
    .unwrap();
}

#[test]
fn next_update_must_come_after_this_update() {
    let (_dir, directory) = ca_directory();
    let mut same = info(1);
    same.next_update = same.this_update;
    assert_eq!(
        lint_names(crl_of(&directory, same, &[]).unwrap_err()),
        ["crl.next_update"]
    );
}

#[test]
fn times_after_2049_are_generalized_time() {
    let (_dir, directory) = ca_directory();
    let late = CrlInfo {
        number: 1,
        this_update: datetime!(2049-12-31 23:59:59 UTC),
        next_update: datetime!(2050-01-01 00:00:00 UTC),
    };
    let mut revoked = entry(&[0x41], RevocationReason::Superseded);
    revoked.revoked_at = datetime!(2050-06-01 00:00:00 UTC);
    let crl = crl_of(&directory, late, &[revoked]).unwrap();
    let tbs = decode(crl.der()).tbs_cert_list;
    assert!(matches!(tbs.this_update, Time::UtcTime(_)));
    assert!(matches!(tbs.next_update, Some(Time::GeneralTime(_))));
    let revoked = tbs.revoked_certificates.unwrap();
    assert!(matches!(revoked[0].revocation_date, Time::GeneralTime(_)));
    let before_1970 = CrlInfo {
        this_update: OffsetDateTime::UNIX_EPOCH - time::Duration::seconds(1),
        ..late
    };
    assert_eq!(
        lint_names(crl_of(&directory, before_1970, &[]).unwrap_err()),
        ["crl.time_range"]
    );
}

/// The head and extension lints read the bytes back: a wrong issuer name,
/// version, AKI or CRL number in them is found.
#[test]
fn the_lints_read_the_encoded_head_and_extensions() {
    let (_dir, directory) = ca_directory();
    let issuer = CrlIssuer::new(directory.ca.certificate_der(), directory.ca.signer()).unwrap();
    let mut head = Vec::new();
    encode::head(&mut head, &issuer, &info(1)).unwrap();
    lint::head(&head, &issuer, &info(1)).unwrap();
    let mut version = head.clone();
    version[2] = 0;
    assert_eq!(
        lint_names(lint::head(&version, &issuer, &info(1)).unwrap_err()),
        ["crl.version"]
    );
    let name_at = head
        .windows(issuer.subject_der().len())
        .position(|w| w == issuer.subject_der())
        .unwrap();
    let mut name = head.clone();
    // The name's last octet is a character of its last attribute.
    name[name_at + issuer.subject_der().len() - 1] ^= 1;
    let names = lint_names(lint::head(&name, &issuer, &info(1)).unwrap_err());
    assert!(names.contains(&"crl.issuer_name"), "{names:?}");

    let mut extensions = Vec::new();
    encode::crl_extensions(&mut extensions, &issuer, 41).unwrap();
    lint::extensions(&extensions, &issuer, 41).unwrap();
    assert_eq!(
        lint_names(lint::extensions(&extensions, &issuer, 42).unwrap_err()),
        ["crl.crl_number"]
    );
    let kid_at = extensions
        .windows(issuer.key_identifier().len())
        .position(|w| w == issuer.key_identifier())
        .unwrap();
    extensions[kid_at] ^= 1;
    assert_eq!(
        lint_names(lint::extensions(&extensions, &issuer, 41).unwrap_err()),
        ["crl.authority_key_identifier"]
    );
}

#[test]
fn the_issuer_must_be_the_keys_ca_certificate_with_crl_sign() {
    let (_dir, directory) = ca_directory();
    let other = crate::signer::SoftwareSigner::generate(KeyType::EcP256).unwrap();
    let error = CrlIssuer::new(directory.ca.certificate_der(), &other).unwrap_err();
    assert!(matches!(error, CrlError::Issuer(_)), "{error}");
    // The root signs its own ARL.
    let root_key = crate::keyref::KeyRef::parse(ca::ROOT_KEY_FILE, &directory.dir)
        .unwrap()
        .open(&Unlock::default())
        .unwrap();
    let root = CrlIssuer::new(&directory.root_der, root_key.as_ref()).unwrap();
    assert_eq!(
        root.subject_der(),
        subject_der(&directory.root_der).unwrap()
    );
    assert_ne!(
        root.subject_der(),
        subject_der(directory.ca.certificate_der()).unwrap()
    );
}

#[test]
fn files_are_written_atomically_and_only_over_crls() {
    let (dir, directory) = ca_directory();
    let crl = crl_of(
        &directory,
        info(3),
        &[entry(&[0x41], RevocationReason::Superseded)],
    )
    .unwrap();
    let paths = CrlPaths {
        der: dir.path().join("issuing.crl"),
        pem: dir.path().join("issuing.crl.pem"),
    };
    write_files(&crl, &paths).unwrap();
    assert_eq!(std::fs::read(&paths.der).unwrap(), crl.der());
    let pem = std::fs::read_to_string(&paths.pem).unwrap();
    let (label, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
    assert_eq!((label, der.as_slice()), ("X509 CRL", crl.der()));
    // The next CRL replaces them.
    let next = crl_of(&directory, info(4), &[]).unwrap();
    write_files(&next, &paths).unwrap();
    assert_eq!(std::fs::read(&paths.der).unwrap(), next.der());
    // Anything else in the way is left alone.
    std::fs::write(&paths.der, directory.ca.certificate_der()).unwrap();
    assert!(matches!(
        write_files(&next, &paths),
        Err(CrlError::NotACrl(_))
    ));
    assert_eq!(
        std::fs::read(&paths.der).unwrap(),
        directory.ca.certificate_der()
    );
    std::fs::remove_file(&paths.der).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &paths.der).unwrap();
    assert!(matches!(
        write_files(&next, &paths),
        Err(CrlError::NotACrl(_))
    ));
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
}

/// A source shaped like the journal's `revoked_entries`: a callback per
/// row, the count at the end; a refusal stops it with the source's own error.
#[test]
fn a_callback_source_streams_into_the_builder_and_a_refusal_stops_it() {
    let (_dir, directory) = ca_directory();
    let issuer = CrlIssuer::new(directory.ca.certificate_der(), directory.ca.signer()).unwrap();
    let rows = |serials: Vec<u8>| {
        move |each: &mut dyn FnMut(RevokedEntry) -> Result<(), String>| -> Result<u64, String> {
            let mut count = 0;
            for serial in &serials {
                each(entry(&[0x41, *serial], RevocationReason::Superseded))?;
                count += 1;
            }
            Ok(count)
        }
    };
    let stop = |e: &CrlError| format!("stopped: {e}");
    let mut builder = CrlBuilder::start(&issuer, info(1)).unwrap();
    assert_eq!(builder.push_from(rows(vec![1, 2, 3]), stop).unwrap(), 3);
    let crl = builder.finish().unwrap();
    assert_eq!(
        decode(crl.der())
            .tbs_cert_list
            .revoked_certificates
            .unwrap()
            .len(),
        3
    );

    let mut builder = CrlBuilder::start(&issuer, info(1)).unwrap();
    let error = builder.push_from(rows(vec![1, 3, 2, 4]), stop).unwrap_err();
    assert!(
        matches!(error, BuildError::Crl(CrlError::Lint(ref r)) if r.has("crl.entries_sorted")),
        "{error}"
    );
    assert_eq!(
        builder.entries(),
        2,
        "the source stopped at the refused row"
    );

    let failing = |_: &mut dyn FnMut(RevokedEntry) -> Result<(), String>| -> Result<u64, String> {
        Err("database gone".into())
    };
    let mut builder = CrlBuilder::start(&issuer, info(1)).unwrap();
    assert!(
        matches!(builder.push_from(failing, stop), Err(BuildError::Source(e)) if e == "database gone")
    );
    let miscounted =
        |each: &mut dyn FnMut(RevokedEntry) -> Result<(), String>| -> Result<u64, String> {
            each(entry(&[0x41], RevocationReason::Superseded))?;
            Ok(2)
        };
    let mut builder = CrlBuilder::start(&issuer, info(1)).unwrap();
    assert!(matches!(
        builder.push_from(miscounted, stop),
        Err(BuildError::Crl(CrlError::Encoding(_)))
    ));
}
