//! `certmint bench --crl N`: builds, signs and writes a CRL of N synthetic
//! entries with [`crate::crl`], as `ca crl` would from the journal, and
//! reports the time of each step, the file sizes, and how far the process's
//! peak memory rose above where it stood before the build.
//!
//! The entries are what production's revocations look like: 16-octet
//! random-looking serials ([`crate::issue::serial::SERIAL_LEN`]) in
//! increasing order, mostly `superseded`, some `cessation-of-operation`,
//! some `key-compromise` with an invalidity date, some `unspecified` (no
//! reasonCode). They are made one at a time as the builder asks, as the
//! journal streams its rows: nothing holds the list.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::crl::{self, CrlBuilder, CrlError, CrlInfo, CrlIssuer, CrlPaths};
use crate::issue::serial::SERIAL_LEN;
use crate::revocation::{RevocationReason, RevokedEntry};
use crate::signer::Signer;

/// What one CRL bench measured.
#[derive(Debug, Clone, Serialize)]
pub struct CrlBenchReport {
    /// Entries listed.
    pub entries: u64,
    /// Seconds to encode and lint the entries into the output.
    pub build_seconds: f64,
    /// Seconds to close, lint, sign and verify the CRL.
    pub sign_seconds: f64,
    /// Seconds to write the DER and PEM files (fsync included).
    pub write_seconds: f64,
    /// Size of the DER file.
    pub der_bytes: u64,
    /// Size of the PEM file.
    pub pem_bytes: u64,
    /// Peak resident memory of the process before the build (KiB); after
    /// the peak was reset, where the kernel lets it be (Linux ≥ 4.0).
    pub baseline_peak_kib: Option<u64>,
    /// Peak resident memory at the end (KiB).
    pub peak_kib: Option<u64>,
    /// How far the peak rose during the build, sign and write (KiB).
    pub peak_growth_kib: Option<u64>,
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak to the current resident memory (writing 5 to
/// `/proc/self/clear_refs`), so that the peak read afterwards is this
/// measurement's; where that is not allowed the peak since the start counts.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// SplitMix64: the random-looking low half of a synthetic serial.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`th of `count` synthetic entries, revoked before `this_update`.
pub fn synthetic_entry(i: u64, count: u64, this_update: OffsetDateTime) -> RevokedEntry {
    // The high half rises with i through 0x40…–0x7f…: positive, 16 octets,
    // strictly increasing; the low half looks random.
    let stride = (u64::MAX >> 2) / count.max(1);
    let high = (1u64 << 62) + i * stride;
    let mut serial = Vec::with_capacity(SERIAL_LEN);
    serial.extend_from_slice(&high.to_be_bytes());
    serial.extend_from_slice(&mix(i).to_be_bytes());
    let revoked_at = this_update - Duration::seconds(i64::try_from(count - i).unwrap_or(0));
    let (reason, invalidity_date) = match i % 10 {
        0..=6 => (RevocationReason::Superseded, None),
        7 => (RevocationReason::CessationOfOperation, None),
        8 => (
            RevocationReason::KeyCompromise,
            Some(revoked_at - Duration::days(3)),
        ),
        _ => (RevocationReason::Unspecified, None),
    };
    RevokedEntry {
        serial,
        revoked_at,
        reason,
        invalidity_date,
    }
}

/// Builds, signs and writes to `paths` a CRL of `count` synthetic entries
/// for the CA `certificate_der` with its key `signer`, and measures it.
pub fn crl_bench(
    certificate_der: &[u8],
    signer: &dyn Signer,
    count: u64,
    paths: &CrlPaths,
    this_update: OffsetDateTime,
) -> Result<CrlBenchReport, CrlError> {
    let issuer = CrlIssuer::new(certificate_der, signer)?;
    let info = CrlInfo {
        number: 1,
        this_update,
        next_update: this_update + Duration::days(7),
    };
    reset_peak_rss();
    let baseline_peak_kib = peak_rss_kib();

    let start = Instant::now();
    let mut builder = CrlBuilder::start(&issuer, info)?;
    for i in 0..count {
        builder.push(&synthetic_entry(i, count, this_update))?;
    }
    let build_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let signed = builder.finish()?;
    let sign_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    crl::write_files(&signed, paths)?;
    let write_seconds = start.elapsed().as_secs_f64();

    let peak_kib = peak_rss_kib();
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(CrlBenchReport {
        entries: signed.entries(),
        build_seconds,
        sign_seconds,
        write_seconds,
        der_bytes: size(&paths.der),
        pem_bytes: size(&paths.pem),
        baseline_peak_kib,
        peak_kib,
        peak_growth_kib: baseline_peak_kib
            .zip(peak_kib)
            .map(|(before, after)| after.saturating_sub(before)),
    })
}
