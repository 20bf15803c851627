//! `certmint bench`: how fast a CA key signs and how fast the pipeline around
//! it issues, measured in the same process and the same run.
//!
//! - the raw signature rate and raw verification rate of the key (the baseline);
//! - the issuance rate of the full pipeline (prepare → lint → intent →
//!   sign → verify → DER), with 1 worker and with N, and p50 / p99 latency;
//! - the pipeline efficiency: issuance rate ÷ the rate that signing plus
//!   verifying alone would allow (1 / (1/sign + 1/verify)), same worker count.
//!
//! The three are measured the same way: on the same threads, warmed up
//! alike, taking turns of 200 ms until each has had its time, so that the
//! noise of a shared machine falls on all three and not on one of them.
//!
//! The intent here is an in-memory record (the bytes that would go to the
//! journal); `--batch` measures a whole order with the durable journal.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
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

/// How long each turn of a measurement lasts: the operations measured
/// together take turns (sign, verify, issue, sign, …), so that a change in
/// the machine's load — other processes, frequency, the disk — falls on all
/// of them alike, and their ratios compare like with like.
const TURN: Duration = Duration::from_millis(200);

/// An operation measured, with what it did over all its turns.
struct Measured<'a> {
    op: &'a (dyn Fn() -> Result<(), String> + Sync),
    /// Whether each operation's duration is kept (for percentiles).
    latencies: bool,
    operations: AtomicU64,
    elapsed: Mutex<Duration>,
    times: Mutex<Vec<Duration>>,
}

impl<'a> Measured<'a> {
    fn new(op: &'a (dyn Fn() -> Result<(), String> + Sync), latencies: bool) -> Self {
        Self {
            op,
            latencies,
            operations: AtomicU64::new(0),
            elapsed: Mutex::new(Duration::ZERO),
            times: Mutex::new(Vec::new()),
        }
    }

    fn rate(&self) -> Rate {
        rate(
            self.operations.load(Ordering::SeqCst),
            *self.elapsed.lock().unwrap_or_else(|p| p.into_inner()),
        )
    }
}

/// Runs every operation in `measured` on the same `workers` threads for
/// `duration` each, in turns of about [`TURN`]. The threads are started
/// once, and each runs every operation once before any clock starts, so
/// that per-thread set-up (a new thread's first use of the DRBG seeds it,
/// for one) is measured for none of them. An operation still running when
/// its turn ends is not counted, for any of them.
fn run_interleaved(
    workers: usize,
    duration: Duration,
    measured: &[Measured<'_>],
) -> Result<(), String> {
    const FINISHED: usize = usize::MAX;
    let turns = (duration.as_secs_f64() / TURN.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    let turn_length = duration / turns;
    let barrier = Barrier::new(workers + 1);
    let current = AtomicUsize::new(FINISHED);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let fail = |e: String| {
        failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    };
    let failed = || failure.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut times = vec![Vec::new(); measured.len()];
                let mut ok = measured
                    .iter()
                    .try_for_each(|m| (m.op)())
                    .map_err(fail)
                    .is_ok();
                loop {
                    barrier.wait(); // the turn starts
                    let index = current.load(Ordering::SeqCst);
                    let Some(m) = measured.get(index) else { break };
                    let mut done = 0;
                    while ok {
                        let started = Instant::now();
                        if let Err(e) = (m.op)() {
                            fail(e);
                            ok = false;
                        } else if !stop.load(Ordering::SeqCst) {
                            done += 1;
                            if m.latencies {
                                times[index].push(started.elapsed());
                            }
                            continue;
                        }
                        break;
                    }
                    m.operations.fetch_add(done, Ordering::SeqCst);
                    barrier.wait(); // the turn has ended
                }
                for (m, times) in measured.iter().zip(times) {
                    m.times
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(times);
                }
            });
        }
        'turns: for _ in 0..turns {
            for (index, m) in measured.iter().enumerate() {
                stop.store(false, Ordering::SeqCst);
                current.store(index, Ordering::SeqCst);
                barrier.wait();
                let start = Instant::now();
                std::thread::sleep(turn_length);
                stop.store(true, Ordering::SeqCst);
                *m.elapsed.lock().unwrap_or_else(|p| p.into_inner()) += start.elapsed();
                barrier.wait();
                if failed() {
                    break 'turns;
                }
            }
        }
        current.store(FINISHED, Ordering::SeqCst);
        barrier.wait();
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
    let issue = || -> Result<(), String> {
        let prepared = ca
            .prepare(&profile, &subject, &device_spki, now)
            .map_err(|e: IssueError| e.to_string())?;
        // The intent: the bytes that would be made durable before signing.
        let intent = prepared.tbs_der().to_vec();
        std::hint::black_box(&intent);
        ca.sign(prepared).map(|_| ()).map_err(|e| e.to_string())
    };

    let measure = |workers: usize| -> Result<PipelineRun, String> {
        let measured = [
            Measured::new(&sign, false),
            Measured::new(&verify, false),
            Measured::new(&issue, true),
        ];
        run_interleaved(workers, duration, &measured)?;
        let [sign, verify, issue] = &measured;
        let (raw_sign, raw_verify, issuance) = (sign.rate(), verify.rate(), issue.rate());
        let mut times = std::mem::take(&mut *issue.times.lock().unwrap_or_else(|p| p.into_inner()));
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
