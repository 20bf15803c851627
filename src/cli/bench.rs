//! `certmint bench`: parsing and reporting; the measuring is in the library.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use certmint::ca::{self, CaDirectory, InitOptions};
use certmint::ids::{IdMode, PrefixTable};
use certmint::journal::{Application, Journal, NewOrder, OrderKind, SqlJournal, Target};
use certmint::keyref::{KeyRef, Unlock};
use certmint::order::serial_list::SerialListReader;
use certmint::pkcs11::{PinSource, Pkcs11Signer, SessionProcesses, Token};
use certmint::production::key_target::soft::SoftTarget;
use certmint::production::setup::{OpenedTarget, ProductionSetup, SetupRequest};
use certmint::profile::{ProductLine, ProfileName};
use certmint::signer::{KeyType, Signer, SoftwareSigner};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint bench --key-type p256\n  certmint bench --ca-key ca/issuing-key.pem --workers 2 --json\n  \
certmint bench --ca-key 'pkcs11:token=musteri;object=bench?pin-source=file:pin' --seconds 5\n  certmint bench --batch 10000\n  \
certmint bench --key-type rsa2048 --sign-only --seconds 1\n  certmint bench --crl 1000000\n\n\
Efficiency = issued/s ÷ sign→verify/s (signing, then verifying those signatures, nothing else);\n\
it is also given against 1 / (1/sign/s + 1/verify/s) of the separate rates. All are measured in the\n\
same run with the same number of workers, by chunks of 32 as ÖKC production does. A pkcs11: key\n\
measured with more than one worker signs in one process per session, each called by two threads\n\
(as `okc produce` does). --batch produces a K-device soft ÖKC order into a temporary journal.\n\
--sign-only measures the key's raw signature rate alone, on one thread, and nothing else.\n\
--crl N measures a CRL of N entries alone: build, sign, write, and the peak memory's rise over\n\
where it stood before the build."
)]
pub struct BenchArgs {
    /// The CA key to measure: a key file or a pkcs11: URI.
    #[arg(long, alias = "key", conflicts_with = "key_type")]
    ca_key: Option<String>,
    /// Measure a freshly generated software key of this type instead.
    #[arg(long, default_value = "p256")]
    key_type: KeyType,
    /// Workers for the parallel run (default: the number of cores; at most 256).
    #[arg(long, value_parser = super::workers_arg)]
    workers: Option<usize>,
    /// Seconds per measurement (0.1 to 3600).
    #[arg(long, default_value_t = 3.0, value_parser = seconds_arg)]
    seconds: f64,
    /// Environment variable holding the CA token's PIN (pkcs11: keys without pin-source).
    #[arg(long, alias = "pin-env")]
    ca_pin_env: Option<String>,
    /// Also produce a K-device soft ÖKC order and report devices/s and peak memory (K at most 1,000,000).
    #[arg(long, value_parser = |t: &str| super::count_arg(t, certmint::input::MAX_BENCH_BATCH))]
    batch: Option<usize>,
    /// Run --batch on this journal instead of a temporary SQLite file: a
    /// postgresql:// URL of an empty database (a journal with orders is
    /// refused: the bench never writes into a journal of record).
    #[arg(long, value_name = "URL", requires = "batch")]
    batch_journal: Option<String>,
    /// Measure only the key's raw signature rate, on one thread, for --seconds.
    #[arg(long, conflicts_with_all = ["workers", "batch"])]
    sign_only: bool,
    /// Measure only a CRL of N synthetic entries (N at most 10,000,000): build,
    /// sign with a CA of --key-type, write; report times, sizes, peak memory.
    #[arg(long, value_name = "N", conflicts_with_all = ["ca_key", "workers", "batch", "sign_only"],
          value_parser = |t: &str| super::count_arg(t, certmint::crl::MAX_ENTRIES))]
    crl: Option<usize>,
    /// Sign the CRL bench's CRL with this CA directory's issuing CA and its
    /// configured key (a pkcs11: key too) instead of a fresh CA.
    #[arg(long, value_name = "DIR", requires = "crl")]
    ca: Option<std::path::PathBuf>,
    /// Keep the CRL bench's CA and CRL in DIR (created) instead of a temporary directory.
    #[arg(long, value_name = "DIR", requires = "crl")]
    crl_out: Option<std::path::PathBuf>,
    /// JSON.
    #[arg(long)]
    json: bool,
}

/// Parses `--seconds`: a finite number from 0.1 to
/// [`certmint::input::MAX_BENCH_SECONDS`] (a usage error beyond: exit 2).
fn seconds_arg(text: &str) -> Result<f64, String> {
    let max = certmint::input::MAX_BENCH_SECONDS;
    match text.parse::<f64>() {
        Ok(s) if (0.1..=max).contains(&s) => Ok(s),
        _ => Err(format!("expected seconds from 0.1 to {max}")),
    }
}

#[derive(Serialize)]
struct BatchReport {
    /// The journal's database: SQLite or PostgreSQL.
    journal: &'static str,
    devices: usize,
    workers: usize,
    seconds: f64,
    devices_per_second: f64,
    peak_rss_kib: Option<u64>,
}

/// Peak resident memory of this process so far (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn batch(devices: usize, workers: usize, journal: Option<&str>) -> Result<BatchReport> {
    let address = match journal {
        None => None,
        Some(text) => match certmint::journal::JournalAddress::parse(text) {
            Ok(address) => Some(address),
            Err(reason) => usage!("--batch-journal: {reason}"),
        },
    };
    let dir = std::env::temp_dir().join(format!("certmint-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let result = (|| -> Result<BatchReport> {
        let now = certmint::issue::validity::now()?;
        let mut options = InitOptions::kamu_sm_defaults(now);
        options.root_key = ca::CaKey::Generate(KeyType::EcP256);
        options.mali_muhur.key = ca::CaKey::Generate(KeyType::EcP256);
        options.okc.key = ca::CaKey::Generate(KeyType::EcP256);
        throwaway_ca(&dir, &options)?;
        let list: String = (0..devices)
            .map(|i| format!("FU{:08}\n", 10_000_000 + i))
            .collect();
        let list_path = dir.join("list.txt");
        std::fs::write(&list_path, list)?;
        let mut journal = match &address {
            None => SqlJournal::open(&dir.join("journal.sqlite"))?,
            Some(address) => {
                if address.file().is_some() {
                    usage!("--batch-journal takes a postgresql:// URL (the SQLite batch runs on a temporary file of its own)");
                }
                let journal = SqlJournal::open_at(address)?;
                // A journal with anything on record is someone's record.
                if certmint::audit::tables::AuditStorage::audit_head(&journal)?.is_some() {
                    usage!("--batch-journal {address}: the journal holds records; the bench runs on an empty database only");
                }
                journal
            }
        };
        let order = NewOrder {
            kind: OrderKind::Okc,
            manufacturer: "Bench A.Ş.".into(),
            manufacturer_vkn: Some(certmint::ids::TaxpayerId::Vkn(certmint::ids::Vkn::parse(
                "4540536920",
                certmint::ids::IdMode::Production,
            )?)),
            prefixes: vec!["FU".into()],
            application: Application::Initial,
            target: Target::Soft,
            key_type: certmint::signer::KeyType::EcP256,
            source: list_path.display().to_string(),
            operator: "bench".into(),
        };
        let file = std::fs::File::open(&list_path)?;
        let reader =
            SerialListReader::new(std::io::BufReader::new(file), PrefixTable::new(["FU"])?);
        let imported = certmint::order::import::import_order(
            &mut journal,
            &order,
            &mut reader.map(|item| item.map(certmint::order::import::Listed::from)),
            false,
        )?;
        let order_id = imported.order.context("the bench order was not imported")?;
        journal.mark_paid(order_id, "bench")?;
        let journal: Mutex<SqlJournal> = Mutex::new(journal);
        // Set up as `okc produce` sets up a run: the same checks, claim,
        // issuing CA and calendar.
        let request = SetupRequest {
            order: order_id,
            profile: Some(ProfileName::OkcDevice),
            target: Some(Target::Soft),
            ca_dir: &dir.join("ca"),
            ca_unlock: Unlock::default(),
            id_mode: IdMode::Production,
            closed_days: None,
            operator: "bench".into(),
            lease_wait: Duration::ZERO,
            on_ctrl_c: None,
        };
        let (setup, ()) = ProductionSetup::open(&journal, request, |_| {
            Ok::<_, anyhow::Error>(OpenedTarget {
                target: (),
                workers,
            })
        })?;
        let target = SoftTarget::new(&setup.issuing.chain)?;
        let production = setup.production(dir.join("out"), &|| {});
        let start = Instant::now();
        production.run(&journal, &target)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(BatchReport {
            journal: if address.as_ref().is_some_and(|a| a.file().is_none()) {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            devices,
            workers,
            seconds,
            devices_per_second: devices as f64 / seconds,
            peak_rss_kib: peak_rss_kib(),
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `--sign-only`: the key's raw signature rate, opened for one worker.
fn sign_only(args: &BenchArgs) -> Result<()> {
    let (signer, name): (Box<dyn Signer>, String) = match &args.ca_key {
        Some(reference) => (
            KeyRef::parse(reference, std::path::Path::new("."))?
                .open(&super::unlock(args.ca_pin_env.clone(), 1))?,
            reference.clone(),
        ),
        None => (
            Box::new(SoftwareSigner::generate(args.key_type)?),
            format!("generated {}", args.key_type),
        ),
    };
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let rate = certmint::tools::bench::raw_sign_rate(signer.as_ref(), duration)
        .map_err(|e| anyhow::anyhow!(e))?;
    if args.json {
        super::json::print(
            "bench.sign",
            &serde_json::json!({ "key": name, "raw_sign": rate }),
        )?;
    } else {
        println!(
            "Key: {name}\nsign/s: {:.0} (1 thread, {} signatures in {:.2} s, chunks of {})",
            rate.per_second,
            rate.operations,
            rate.seconds,
            certmint::production::CHUNK
        );
    }
    Ok(())
}

/// `--crl N`: a CRL of N synthetic entries, signed by a fresh CA of
/// `--key-type`, in `--crl-out` or a temporary directory.
fn crl(args: &BenchArgs, entries: usize) -> Result<()> {
    let (dir, temporary) = match &args.crl_out {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("certmint-crl-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let result = (|| -> Result<(certmint::tools::crl_bench::CrlBenchReport, String)> {
        let directory = match &args.ca {
            Some(ca_dir) => {
                // The ÖKC issuing CA: its device population is the one whose
                // CRL reaches millions of entries.
                CaDirectory::open(
                    ca_dir,
                    ProductLine::Okc,
                    None,
                    &super::unlock(args.ca_pin_env.clone(), 1),
                )?
            }
            None => {
                let now = certmint::issue::validity::now()?;
                let mut options = InitOptions::kamu_sm_defaults(now);
                options.root_key = ca::CaKey::Generate(args.key_type);
                options.mali_muhur.key = ca::CaKey::Generate(args.key_type);
                options.okc.key = ca::CaKey::Generate(args.key_type);
                throwaway_ca(&dir, &options)?;
                CaDirectory::open(&dir.join("ca"), ProductLine::Okc, None, &Unlock::default())?
            }
        };
        let key = match &args.ca {
            Some(ca_dir) => ca::overview(ca_dir)?
                .issuing
                .into_iter()
                .find(|issuing| issuing.line == directory.line)
                .map(|issuing| issuing.key)
                .unwrap_or_default(),
            None => format!("generated {}", args.key_type),
        };
        let paths = certmint::crl::CrlPaths {
            der: dir.join("bench.crl"),
            pem: dir.join("bench.crl.pem"),
        };
        let report = certmint::tools::crl_bench::crl_bench(
            directory.ca.certificate_der(),
            directory.ca.signer(),
            entries as u64,
            &paths,
            time::OffsetDateTime::now_utc(),
        )?;
        Ok((report, key))
    })();
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (report, key) = result?;
    if args.json {
        return super::json::print(
            "bench.crl",
            &serde_json::json!({ "key": key, "crl": report }),
        );
    }
    let kib = |k: Option<u64>| k.map_or("unknown".into(), |k| format!("{k} KiB"));
    println!(
        "CRL: {} entries, issuing CA key {}\nbuild: {:.2} s  sign and verify: {:.3} s  write: {:.2} s\n\
         DER: {} bytes ({:.1} bytes per entry)  PEM: {} bytes\n\
         peak memory: {} before the build, {} after, a rise of {}",
        report.entries,
        key,
        report.build_seconds,
        report.sign_seconds,
        report.write_seconds,
        report.der_bytes,
        report.der_bytes as f64 / report.entries.max(1) as f64,
        report.pem_bytes,
        kib(report.baseline_peak_kib),
        kib(report.peak_kib),
        kib(report.peak_growth_kib),
    );
    Ok(())
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.sign_only {
        return sign_only(&args);
    }
    if let Some(entries) = args.crl {
        return crl(&args, entries);
    }
    let workers = args.workers.unwrap_or_else(super::default_workers);
    // The key as production opens it for one worker and for `workers`.
    let (single, parallel, name): (Arc<dyn Signer>, Arc<dyn Signer>, String) = match &args.ca_key {
        Some(reference) => match KeyRef::parse(reference, std::path::Path::new("."))? {
            KeyRef::Pkcs11(uri) if workers > 1 => {
                let unlock = super::unlock(args.ca_pin_env.clone(), workers);
                let program = unlock.session_program.context("locating certmint itself")?;
                let pins = PinSource::choose(uri.pin_source.clone(), unlock.pin_env.as_deref());
                let pin = pins.read(&uri.token_name())?;
                // One PIN read, tried once: in this process first.
                let single = Pkcs11Signer::on_token(
                    Token::open_with_pin(&uri, pin.clone(), Some(1))?,
                    uri.clone(),
                )?;
                let parallel = SessionProcesses::open_with_pin(&program, &uri, &pin, workers)?;
                (Arc::new(single), Arc::new(parallel), reference.clone())
            }
            key => {
                let signer: Arc<dyn Signer> =
                    Arc::from(key.open(&super::unlock(args.ca_pin_env.clone(), 1))?);
                (signer.clone(), signer, reference.clone())
            }
        },
        None => {
            let signer: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(args.key_type)?);
            (
                signer.clone(),
                signer,
                format!("generated {}", args.key_type),
            )
        }
    };
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let report = certmint::tools::bench::bench(single, parallel, &name, workers, duration)
        .map_err(|e| anyhow::anyhow!(e))?;
    let batch = args
        .batch
        .map(|k| batch(k, workers, args.batch_journal.as_deref()))
        .transpose()?;
    if args.json {
        super::json::print(
            "bench",
            &serde_json::json!({ "pipeline": report, "batch": batch }),
        )?;
    } else {
        print!("{}", report.to_text());
        if let Some(b) = batch {
            println!(
                "\nBatch: {} soft ÖKC devices (P-256, durable {} journal, PKCS#12) with {} workers in {:.1} s: {:.0} devices/s, peak memory {} KiB",
                b.devices,
                b.journal,
                b.workers,
                b.seconds,
                b.devices_per_second,
                b.peak_rss_kib.map_or("unknown".into(), |k| k.to_string())
            );
        }
    }
    Ok(())
}

/// A throwaway CA in `dir/ca` for a bench, its certificates on record in a
/// journal beside it (`dir/ca-journal.sqlite`), which goes with the CA:
/// removed with a temporary folder, kept with the CA in `--crl-out`.
fn throwaway_ca(dir: &std::path::Path, options: &InitOptions) -> Result<()> {
    let mut journal = certmint::journal::SqlJournal::open_at(
        &certmint::journal::JournalAddress::File(dir.join("ca-journal.sqlite")),
    )?;
    ca::init(
        &dir.join("ca"),
        options,
        &mut ca::CaLedger {
            journal: &mut journal,
            operator: "certmint bench",
        },
    )?;
    Ok(())
}
