//! `certmint bench`: how fast a CA key signs and how fast the pipeline around
//! it issues, measured in the same process and the same run.
//!
//! - the raw signature rate and raw verification rate of the key (the baseline);
//! - the issuance rate of the full pipeline (prepare → lint → intent →
//!   sign → verify → DER), with 1 worker and with N, and p50 / p99 latency;
//! - the pipeline efficiency: issuance rate ÷ the rate that signing plus
//!   verifying alone would allow (1 / (1/sign + 1/verify)), same worker count.
//!
//! The intent here is an in-memory record (the bytes that would go to the
//! journal); `--batch` measures a whole order with the durable journal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::ids::{DeviceSerial, PrefixTable};
use crate::issue::{CertificateAuthority, IssueError};
use crate::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};
use crate::signer::{KeyType, Signer, SoftwareSigner, VerifyingKey};

/// A measured rate.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Operations completed.
    pub operations: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Operations per second.
    pub per_second: f64,
}

/// The pipeline measured with a number of workers.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineRun {
    /// Parallel workers.
    pub workers: usize,
    /// Raw signatures per second with this many workers.
    pub raw_sign: Rate,
    /// Raw verifications per second with this many workers.
    pub raw_verify: Rate,
    /// Certificates issued per second.
    pub issuance: Rate,
    /// Median issuance latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile issuance latency, microseconds.
    pub p99_us: f64,
    /// What signing plus verifying alone would allow, per second.
    pub sign_and_verify_bound: f64,
    /// issuance ÷ bound.
    pub efficiency: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The key measured (reference or "generated p256").
    pub key: String,
    /// Its type.
    pub key_type: String,
    /// Its signature algorithm.
    pub algorithm: String,
    /// One worker.
    pub single: PipelineRun,
    /// N workers.
    pub parallel: PipelineRun,
}

fn rate(operations: u64, elapsed: Duration) -> Rate {
    let seconds = elapsed.as_secs_f64();
    Rate {
        operations,
        seconds,
        per_second: if seconds > 0.0 {
            operations as f64 / seconds
        } else {
            0.0
        },
    }
}

/// Runs `op` on `workers` threads for `duration`; returns the count and, when
/// `latencies`, every operation's duration.
fn run_for(
    workers: usize,
    duration: Duration,
    latencies: bool,
    op: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<(u64, Duration, Vec<Duration>), String> {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        op()?;
                        if latencies {
                            times.push(t.elapsed());
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(times)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok((count.load(Ordering::Relaxed), elapsed, all))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// Measures `signer` as a CA key: raw rates, then the pipeline, with 1 and
/// `workers` workers, `duration` per measurement.
pub fn bench(
    signer: Arc<dyn Signer>,
    key: &str,
    workers: usize,
    duration: Duration,
) -> Result<BenchReport, String> {
    let config = CaConfig::kamu_sm_defaults();
    let root_profile =
        Profile::from_config(ProfileName::RootCa, &config).map_err(|e| e.to_string())?;
    let profile =
        Profile::from_config(ProfileName::OkcDevice, &config).map_err(|e| e.to_string())?;
    let ca_subject = Subject::from_input(
        &root_profile,
        &SubjectInput {
            common_name: Some("certmint bench CA".into()),
            ..Default::default()
        },
        crate::ids::IdMode::Production,
    )
    .map_err(|e| e.to_string())?;
    let now = crate::issue::validity::now().map_err(|e| e.to_string())?;
    // A throwaway self-signed CA certificate for the key under test.
    let ca = CertificateAuthority::create_root(
        Box::new(SharedSigner(signer.clone())),
        &root_profile,
        &ca_subject,
        now,
    )
    .map_err(|e| e.to_string())?;
    let device_key = SoftwareSigner::generate(KeyType::EcP256).map_err(|e| e.to_string())?;
    let device_spki = device_key.public_key_der().to_vec();
    let subject = Subject::OkcDevice {
        serial: DeviceSerial::parse("FU00022547", &PrefixTable::any())
            .map_err(|e| e.to_string())?,
        manufacturer: Some("Örnek Yazarkasa A.Ş.".into()),
    };
    let verifying = VerifyingKey::new(signer.public_key_der(), signer.algorithm())
        .map_err(|e| e.to_string())?;
    let message = vec![0x5a_u8; 600];
    let signature = signer.sign(&message).map_err(|e| e.to_string())?;

    let sign = || signer.sign(&message).map(|_| ()).map_err(|e| e.to_string());
    let verify = || {
        verifying
            .verify(&message, &signature)
            .map_err(|e| e.to_string())
    };
    let intent_bytes = AtomicU64::new(0);
    let issue = || -> Result<(), String> {
        let prepared = ca
            .prepare(&profile, &subject, &device_spki, now)
            .map_err(|e: IssueError| e.to_string())?;
        // The intent: the bytes that would be made durable before signing.
        intent_bytes.fetch_add(prepared.tbs_der().len() as u64, Ordering::Relaxed);
        ca.sign(prepared).map(|_| ()).map_err(|e| e.to_string())
    };

    let measure = |workers: usize| -> Result<PipelineRun, String> {
        let (n, t, _) = run_for(workers, duration, false, &sign)?;
        let raw_sign = rate(n, t);
        let (n, t, _) = run_for(workers, duration, false, &verify)?;
        let raw_verify = rate(n, t);
        let (n, t, mut times) = run_for(workers, duration, true, &issue)?;
        let issuance = rate(n, t);
        times.sort();
        let bound = 1.0 / (1.0 / raw_sign.per_second + 1.0 / raw_verify.per_second);
        Ok(PipelineRun {
            workers,
            efficiency: issuance.per_second / bound,
            sign_and_verify_bound: bound,
            p50_us: percentile(&times, 0.50),
            p99_us: percentile(&times, 0.99),
            raw_sign,
            raw_verify,
            issuance,
        })
    };
    let single = measure(1)?;
    let parallel = measure(workers.max(1))?;
    let key_type = KeyType::of_public_key(signer.public_key_der()).map_err(|e| e.to_string())?;
    Ok(BenchReport {
        key: key.to_owned(),
        key_type: key_type.to_string(),
        algorithm: signer.algorithm().to_string(),
        single,
        parallel,
    })
}

/// An `Arc<dyn Signer>` as a `Box<dyn Signer>` for the CA, sharing the key.
#[derive(Debug)]
struct SharedSigner(Arc<dyn Signer>);

impl Signer for SharedSigner {
    fn algorithm(&self) -> crate::signer::SignatureAlgorithm {
        self.0.algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        self.0.public_key_der()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::signer::SignerError> {
        self.0.sign(message)
    }
}

impl BenchReport {
    /// The report as a table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Key: {} ({}, {})\n\n",
            self.key, self.key_type, self.algorithm
        );
        out += "workers   raw sign/s   raw verify/s   sign+verify bound/s   issued/s   p50 µs   p99 µs   efficiency\n";
        for run in [&self.single, &self.parallel] {
            out += &format!(
                "{:>7}   {:>10.0}   {:>12.0}   {:>19.0}   {:>8.0}   {:>6.0}   {:>6.0}   {:>10.3}\n",
                run.workers,
                run.raw_sign.per_second,
                run.raw_verify.per_second,
                run.sign_and_verify_bound,
                run.issuance.per_second,
                run.p50_us,
                run.p99_us,
                run.efficiency
            );
        }
        out
    }
}
