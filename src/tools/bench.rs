//! `certmint bench`: how fast a CA key signs and how fast the pipeline around
//! it issues, measured in the same process and the same run.
//!
//! - the raw signature rate and raw verification rate of the key (the
//!   baseline), and the rate of signing then verifying each signature, the
//!   two alone as the pipeline must do them;
//! - the issuance rate of the full pipeline (prepare → lint → intent →
//!   sign → verify → DER), with 1 worker and with N, and p50 / p99 latency;
//! - the pipeline efficiency: issuance rate ÷ the rate that signing plus
//!   verifying alone allow, same worker count. It is given against the
//!   measured sign-then-verify rate, and against 1 / (1/sign + 1/verify)
//!   computed from the two separate rates. Each is the median over the
//!   rounds (one turn of every operation) of the ratio within the round.
//!
//! The baseline signs and verifies a chunk of distinct messages and
//! signatures, as production does: verifying one signature over and over
//! runs faster than verifying distinct ones, because the branch predictor
//! learns the variable-time parts of ECDSA verification for that one input.
//!
//! The pipeline is production's own ([`crate::production::Pipeline::sign_chunk`]):
//! a worker prepares and lints a chunk of [`crate::production::CHUNK`]
//! certificates, records their intents (here in memory: a copy of the bytes
//! that would go to the journal), then signs, verifies and writes back each.
//! Its key target gives every device the same software key, so that the
//! bench measures the pipeline around the CA key, not key generation. A
//! certificate's latency runs from the start of its chunk to its write-back. N workers run on the threads production gives them:
//! one each, or two per session process of a token key, one whose chunk is
//! signed while the other verifies. `--batch` measures a whole order with the durable
//! journal.
//!
//! All of them are measured the same way: on the same threads, warmed up
//! alike, taking turns of 200 ms until each has had its time, so that the
//! noise of a shared machine falls on all of them and not on one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::issue::{CertificateAuthority, IssuedCertificate, SubjectKey};
use crate::journal::{Device, DeviceState, Intent, OrderId, Target};
use crate::production::key_target::{DeviceKey, KeyTarget, TargetRun};
use crate::production::pipeline::{Pipeline, Record};
use crate::production::{Certified, ProduceError, CHUNK};
use crate::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};
use crate::signer::{KeyType, Signer, SignerError, SoftwareSigner, VerifyingKey};

/// The bench's key target: one software key, generated once, for every
/// device; its write-back only notes when the certificate was done, and
/// nothing is stored.
struct OneKeyForAll {
    key: Arc<SoftwareSigner>,
}

/// The shared key, as a device's key.
struct SharedKey(Arc<SoftwareSigner>);

impl DeviceKey for SharedKey {
    fn spki(&self) -> &[u8] {
        self.0.public_key_der()
    }

    fn subject_key(&self) -> Result<SubjectKey<'_>, SignerError> {
        Ok(SubjectKey::generated(&self.0))
    }
}

impl TargetRun for OneKeyForAll {
    fn kind(&self) -> Target {
        Target::Soft
    }
}

impl KeyTarget for OneKeyForAll {
    type Key = SharedKey;
    /// When the certificate was verified and written back.
    type Written = Instant;

    fn key_note(&self) -> String {
        "bench: one software key for every device".into()
    }

    fn generate(
        &self,
        _record: &dyn Record,
        _device: &Device,
        _key_type: KeyType,
    ) -> Result<SharedKey, ProduceError> {
        Ok(SharedKey(Arc::clone(&self.key)))
    }

    fn write_back(
        &self,
        _device: &Device,
        _key: SharedKey,
        certificate: &IssuedCertificate,
    ) -> Result<Instant, ProduceError> {
        std::hint::black_box(certificate.der());
        Ok(Instant::now())
    }

    fn store(
        &self,
        _folder: &std::path::Path,
        _device: &Device,
        _certificate_der: &[u8],
        _written: &Instant,
    ) -> Result<(), ProduceError> {
        Ok(())
    }
}

/// The bench's record: intents copied in memory, as the bytes that would
/// go to the journal; no lease to confirm.
struct InMemory;

impl Record for InMemory {
    fn record_key(&self, _device: &Device, _key_id_hex: &str) -> Result<(), ProduceError> {
        Ok(())
    }

    fn record_intents(&self, intents: &[Intent<'_>]) -> Result<(), ProduceError> {
        let copies: Vec<Vec<u8>> = intents.iter().map(|i| i.tbs.to_vec()).collect();
        std::hint::black_box(&copies);
        Ok(())
    }

    fn confirm_lease(&self) -> Result<(), ProduceError> {
        Ok(())
    }
}

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
    /// Parallel workers: signing sessions, for a token key.
    pub workers: usize,
    /// The threads that ran them: one per worker, or two per session
    /// process (see [`crate::signer::pipeline_threads`]).
    pub threads: usize,
    /// Raw signatures per second with this many workers.
    pub raw_sign: Rate,
    /// Raw verifications per second with this many workers.
    pub raw_verify: Rate,
    /// Signatures made and then verified per second, nothing else.
    pub sign_then_verify: Rate,
    /// Certificates issued per second.
    pub issuance: Rate,
    /// Median issuance latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile issuance latency, microseconds.
    pub p99_us: f64,
    /// 1 / (1/sign + 1/verify), from the separate rates, per second.
    pub separate_sign_verify_bound: f64,
    /// issuance ÷ sign_then_verify within each round, the median over the
    /// rounds.
    pub efficiency: f64,
    /// issuance ÷ 1 / (1/sign + 1/verify) within each round, the median
    /// over the rounds.
    pub efficiency_vs_separate_rates: f64,
    /// Each rate in each round (one turn of every operation), per second:
    /// what the efficiencies are the medians of.
    pub per_round: RoundRates,
}

/// Rates per round, in the order the rounds ran.
#[derive(Debug, Clone, Serialize)]
pub struct RoundRates {
    /// Raw signatures per second.
    pub raw_sign: Vec<f64>,
    /// Raw verifications per second.
    pub raw_verify: Vec<f64>,
    /// Signatures made and then verified per second.
    pub sign_then_verify: Vec<f64>,
    /// Certificates issued per second.
    pub issuance: Vec<f64>,
}

/// How much faster N workers (sessions) go than one: each rate of the
/// parallel run ÷ the same rate of the single run.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// Workers of the parallel run.
    pub workers: usize,
    /// Raw signatures per second.
    pub raw_sign: f64,
    /// Raw verifications per second.
    pub raw_verify: f64,
    /// Signatures made and then verified per second.
    pub sign_then_verify: f64,
    /// Certificates issued per second.
    pub issuance: f64,
}

impl Scaling {
    fn of(single: &PipelineRun, parallel: &PipelineRun) -> Self {
        let ratio = |p: &Rate, s: &Rate| {
            if s.per_second > 0.0 {
                p.per_second / s.per_second
            } else {
                0.0
            }
        };
        Self {
            workers: parallel.workers,
            raw_sign: ratio(&parallel.raw_sign, &single.raw_sign),
            raw_verify: ratio(&parallel.raw_verify, &single.raw_verify),
            sign_then_verify: ratio(&parallel.sign_then_verify, &single.sign_then_verify),
            issuance: ratio(&parallel.issuance, &single.issuance),
        }
    }
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
    /// N workers ÷ 1 worker. For a token key, whether more sessions help:
    /// the raw signing ratio is the token's own limit, the issuance ratio
    /// what the production line gains (verification runs on the host).
    pub scaling: Scaling,
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

/// One call of a measured operation: it completes some operations (a chunk
/// of certificates, or one signature) and pushes the instant each completed.
type Operation<'a> = &'a (dyn Fn(&mut Vec<Instant>) -> Result<(), String> + Sync);

/// An operation measured, with what it did in each of its turns.
struct Measured<'a> {
    op: Operation<'a>,
    /// Whether each operation's latency (from the start of its call) is kept.
    latencies: bool,
    /// Per round (one turn of every operation): the operations completed
    /// and the time the workers spent on them, summed over workers.
    rounds: Mutex<Vec<(u64, Duration)>>,
    times: Mutex<Vec<Duration>>,
}

impl<'a> Measured<'a> {
    fn new(op: Operation<'a>, latencies: bool) -> Self {
        Self {
            op,
            latencies,
            rounds: Mutex::new(Vec::new()),
            times: Mutex::new(Vec::new()),
        }
    }

    /// Adds what one worker did in its turn of `round`.
    fn add(&self, round: usize, operations: u64, time: Duration) {
        let mut rounds = self.rounds.lock().unwrap_or_else(|p| p.into_inner());
        if rounds.len() <= round {
            rounds.resize(round + 1, (0, Duration::ZERO));
        }
        rounds[round].0 += operations;
        rounds[round].1 += time;
    }

    /// Operations over the time a thread spent on them (the mean over the
    /// `threads` that ran it), over all rounds.
    fn rate(&self, threads: usize) -> Rate {
        let rounds = self.rounds.lock().unwrap_or_else(|p| p.into_inner());
        let operations = rounds.iter().map(|r| r.0).sum();
        let time: Duration = rounds.iter().map(|r| r.1).sum();
        rate(operations, time / threads.max(1) as u32)
    }

    /// The rate in each round, per second.
    fn round_rates(&self, threads: usize) -> Vec<f64> {
        let rounds = self.rounds.lock().unwrap_or_else(|p| p.into_inner());
        rounds
            .iter()
            .map(|&(operations, time)| rate(operations, time / threads.max(1) as u32).per_second)
            .collect()
    }
}

/// The median of `values`, ignoring those that are not finite or not
/// positive (a round cut short by a failure); 0 when none is left.
fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite() && *v > 0.0);
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Runs every operation in `measured` on the same `workers` threads for
/// `duration` each, in turns of about [`TURN`]. The threads are started
/// once, and each runs every operation once before any clock starts, so
/// that per-thread set-up (a new thread's first use of the DRBG seeds it,
/// for one) is measured for none of them. A worker finishes the call it is
/// in when the turn ends, and its time for the turn runs to that call's
/// end: every operation it completed counts, with all the time it took. (A
/// chunk's signatures all complete at its end; cutting them off at the
/// turn's end would lose up to a chunk per turn — 48 ms of 200 for a
/// SoftHSM2 P-384 key.)
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
    let current_round = AtomicUsize::new(0);
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
                    .try_for_each(|m| (m.op)(&mut Vec::new()))
                    .map_err(fail)
                    .is_ok();
                let mut completions = Vec::new();
                loop {
                    barrier.wait(); // the turn starts
                    let index = current.load(Ordering::SeqCst);
                    let Some(m) = measured.get(index) else { break };
                    let round = current_round.load(Ordering::SeqCst);
                    let turn_started = Instant::now();
                    let mut last_completed = turn_started;
                    let mut done = 0;
                    while ok && !stop.load(Ordering::SeqCst) {
                        completions.clear();
                        let call_started = Instant::now();
                        if let Err(e) = (m.op)(&mut completions) {
                            fail(e);
                            ok = false;
                            break;
                        }
                        for &completed in &completions {
                            done += 1;
                            last_completed = last_completed.max(completed);
                            if m.latencies {
                                times[index].push(completed - call_started);
                            }
                        }
                    }
                    m.add(round, done, last_completed - turn_started);
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
        'turns: for round in 0..turns {
            current_round.store(round as usize, Ordering::SeqCst);
            for index in 0..measured.len() {
                stop.store(false, Ordering::SeqCst);
                current.store(index, Ordering::SeqCst);
                barrier.wait();
                std::thread::sleep(turn_length);
                stop.store(true, Ordering::SeqCst);
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

/// Measures a CA key: raw rates, then the pipeline, with 1 worker on
/// `single` and with `workers` workers on `parallel`, `duration` per
/// measurement. The two are the same key, opened as production opens it for
/// that many workers: a token key with one session in this process, and
/// with one session process per worker (see
/// [`crate::pkcs11::session_process`]); a software key is one signer for
/// both.
pub fn bench(
    single: Arc<dyn Signer>,
    parallel: Arc<dyn Signer>,
    key: &str,
    workers: usize,
    duration: Duration,
) -> Result<BenchReport, String> {
    if single.public_key_der() != parallel.public_key_der() {
        return Err("the key opened for one worker and for several differ".into());
    }
    let key_type = KeyType::of_public_key(single.public_key_der()).map_err(|e| e.to_string())?;
    let algorithm = single.algorithm().to_string();
    let single = measure(single, 1, duration)?;
    let parallel = measure(parallel, workers.max(1), duration)?;
    Ok(BenchReport {
        key: key.to_owned(),
        key_type: key_type.to_string(),
        algorithm,
        scaling: Scaling::of(&single, &parallel),
        single,
        parallel,
    })
}

/// A chunk of distinct messages, about a TBS certificate's size.
/// Production never verifies the same signature twice, and verifying one
/// signature over and over is faster than verifying distinct ones (by 8–14%
/// for P-256 here): the variable-time parts of ECDSA verification (the
/// modular inverse, the wNAF multiplication) take the same branches each
/// time, and the branch predictor learns them. So the baseline verifies,
/// and signs, a chunk of distinct ones.
fn distinct_messages() -> Vec<Vec<u8>> {
    (0..CHUNK)
        .map(|index| {
            let mut message = vec![0x5a_u8; 600];
            message[..8].copy_from_slice(&(index as u64).to_be_bytes());
            message
        })
        .collect()
}

/// The raw signature rate of `signer` alone, on the calling thread, for
/// `duration`: chunks of distinct messages, signed as the baseline of
/// [`bench()`] signs them, after one chunk to warm up. A quick preflight of a
/// key, and the figure `benches/signing-vs-openssl.sh` sets against
/// `openssl speed` in slices as short as its own.
pub fn raw_sign_rate(signer: &dyn Signer, duration: Duration) -> Result<Rate, String> {
    let messages = distinct_messages();
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    signer.sign_all(&messages).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut signed = 0;
    while started.elapsed() < duration {
        signed += signer.sign_all(&messages).map_err(|e| e.to_string())?.len() as u64;
    }
    Ok(rate(signed, started.elapsed()))
}

/// The raw rates and the pipeline of `signer` with `workers` workers.
fn measure(
    signer: Arc<dyn Signer>,
    workers: usize,
    duration: Duration,
) -> Result<PipelineRun, String> {
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
        Box::new(signer.clone()),
        &root_profile,
        &ca_subject,
        now,
    )
    .map_err(|e| e.to_string())?;
    let target = OneKeyForAll {
        key: Arc::new(SoftwareSigner::generate(KeyType::EcP256).map_err(|e| e.to_string())?),
    };
    let certified = Certified::Devices {
        manufacturer: "Örnek Yazarkasa A.Ş.".into(),
    };
    let pipeline = Pipeline {
        order: OrderId(0),
        ca: &ca,
        profile: &profile,
        certified: &certified,
        key_type: KeyType::EcP256,
    };
    let devices: Vec<Device> = (0..CHUNK)
        .map(|index| {
            Ok(Device {
                id: index as i64 + 1,
                order: OrderId(0),
                name: crate::ids::DeviceName::parse(&format!("FU{:08}", 22_547 + index))
                    .map_err(|e| e.to_string())?,
                state: DeviceState::Planned,
                key_id: None,
            })
        })
        .collect::<Result<_, String>>()?;
    let verifying = VerifyingKey::new(signer.public_key_der(), signer.algorithm())
        .map_err(|e| e.to_string())?;
    let messages = distinct_messages();
    // Signing goes by chunks, as in production, so that a key reached
    // through a round trip (a session process) pays for it once per chunk.
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures = signer.sign_all(&messages).map_err(|e| e.to_string())?;

    let sign = |done: &mut Vec<Instant>| {
        signer.sign_all(&messages).map_err(|e| e.to_string())?;
        let now = Instant::now();
        done.extend(messages.iter().map(|_| now));
        Ok(())
    };
    let verify_each = |signatures: &[Vec<u8>], done: &mut Vec<Instant>| {
        for (message, signature) in messages.iter().zip(signatures) {
            verifying
                .verify(message, signature)
                .map_err(|e| e.to_string())?;
            done.push(Instant::now());
        }
        Ok(())
    };
    let verify = |done: &mut Vec<Instant>| verify_each(&signatures, done);
    let sign_then_verify = |done: &mut Vec<Instant>| {
        verify_each(
            &signer.sign_all(&messages).map_err(|e| e.to_string())?,
            done,
        )
    };
    let issue = |done: &mut Vec<Instant>| -> Result<(), String> {
        let signed = pipeline
            .sign_chunk(&InMemory, &target, devices.clone())
            .map_err(|failure| failure.error.to_string())?;
        done.extend(signed.iter().map(|device| device.written));
        Ok(())
    };

    let measured = [
        Measured::new(&sign, false),
        Measured::new(&verify, false),
        Measured::new(&sign_then_verify, false),
        Measured::new(&issue, true),
    ];
    // As ÖKC production runs them: two threads per session process.
    let threads = crate::signer::pipeline_threads(workers, signer.as_ref());
    run_interleaved(threads, duration, &measured)?;
    let [sign, verify, sign_verify, issue] = &measured;
    let (raw_sign, raw_verify, sign_then_verify, issuance) = (
        sign.rate(threads),
        verify.rate(threads),
        sign_verify.rate(threads),
        issue.rate(threads),
    );
    let mut times = std::mem::take(&mut *issue.times.lock().unwrap_or_else(|p| p.into_inner()));
    times.sort();
    let bound = |sign: f64, verify: f64| 1.0 / (1.0 / sign + 1.0 / verify);
    // The efficiencies compare rates measured within one round (0.8 s), and
    // take the median over the rounds: a burst of load from another tenant
    // of the host falls on a turn or two and moves a ratio of totals more
    // than it moves the median.
    let per_round = RoundRates {
        raw_sign: sign.round_rates(threads),
        raw_verify: verify.round_rates(threads),
        sign_then_verify: sign_verify.round_rates(threads),
        issuance: issue.round_rates(threads),
    };
    let efficiency = median(
        per_round
            .issuance
            .iter()
            .zip(&per_round.sign_then_verify)
            .map(|(issued, sv)| issued / sv)
            .collect(),
    );
    let efficiency_vs_separate_rates = median(
        per_round
            .issuance
            .iter()
            .zip(per_round.raw_sign.iter().zip(&per_round.raw_verify))
            .map(|(issued, (&sign, &verify))| issued / bound(sign, verify))
            .collect(),
    );
    Ok(PipelineRun {
        workers,
        threads,
        efficiency,
        efficiency_vs_separate_rates,
        separate_sign_verify_bound: bound(raw_sign.per_second, raw_verify.per_second),
        per_round,
        p50_us: percentile(&times, 0.50),
        p99_us: percentile(&times, 0.99),
        raw_sign,
        raw_verify,
        sign_then_verify,
        issuance,
    })
}

impl BenchReport {
    /// The report as a table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Key: {} ({}, {})\n\n",
            self.key, self.key_type, self.algorithm
        );
        out += "workers   threads   sign/s   verify/s   sign→verify/s   issued/s   p50 µs   p99 µs   efficiency   vs separate rates\n";
        for run in [&self.single, &self.parallel] {
            out += &format!(
                "{:>7}   {:>7}   {:>6.0}   {:>8.0}   {:>13.0}   {:>8.0}   {:>6.0}   {:>6.0}   {:>10.3}   {:>17.3}\n",
                run.workers,
                run.threads,
                run.raw_sign.per_second,
                run.raw_verify.per_second,
                run.sign_then_verify.per_second,
                run.issuance.per_second,
                run.p50_us,
                run.p99_us,
                run.efficiency,
                run.efficiency_vs_separate_rates,
            );
        }
        let scaling = &self.scaling;
        out += &format!(
            "\n{} workers ÷ 1: sign ×{:.2}   verify ×{:.2}   sign→verify ×{:.2}   issued ×{:.2}\n",
            scaling.workers,
            scaling.raw_sign,
            scaling.raw_verify,
            scaling.sign_then_verify,
            scaling.issuance,
        );
        out += &format!(
            "\nefficiency = issued/s ÷ sign→verify/s (signing, then verifying those signatures, nothing else);\n\
             vs separate rates = issued/s ÷ 1/(1/sign/s + 1/verify/s). Both are medians over {} rounds of\n\
             the ratio within a round (one {} ms turn of each measurement), which a burst of load on the\n\
             host moves less. Everything goes by chunks of {}, as ÖKC production does: the pipeline\n\
             prepares and lints a chunk, records its intents, signs it, then verifies and writes back each\n\
             certificate; latency runs from the start of a certificate's chunk to its write-back. A token key with\n\
             more than one session signs in one process per session, called by two threads: one's chunk is\n\
             signed while the other verifies its last chunk and prepares the next.\n",
            self.single.per_round.issuance.len(),
            TURN.as_millis(),
            crate::production::CHUNK
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn rounds_cut_short_by_a_failure_are_left_out() {
        // A round with no time gives an infinite or NaN ratio, or zero.
        assert_eq!(median(vec![f64::NAN, 2.0, f64::INFINITY, 0.0, 4.0]), 3.0);
        assert_eq!(median(vec![f64::NAN]), 0.0);
    }
}
