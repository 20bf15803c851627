//! `okc purge`: soft ÖKC deliveries are irreversibly deleted by the CA once
//! 10 Turkish business days have passed since the upload (day 1 is the first
//! business day after it; the purge is due at the end of day 10).
//!
//! The purge works on what the journal recorded at delivery: the delivery
//! folder and the password manifest as absolute paths, and the device
//! serials that have a PKCS#12 file. Before anything is deleted it checks
//! that the key material is where the journal says; an order whose files are
//! not is reported and left alone, and the other orders are purged. Symbolic
//! links are never followed: a link in the delivery is removed (the link,
//! never its target) and reported; a linked folder refuses the order.
//!
//! Deletion overwrites each PKCS#12 file and the password manifest with
//! zeros, syncs, then unlinks; the journal erases the stored passwords
//! (SQLite `secure_delete`), records the purge with what was destroyed, and
//! truncates its write-ahead log so no erased password stays in its files.
//! Overwriting in place cannot reach copies a copy-on-write file system or
//! an SSD's wear levelling keeps: put deliveries on an encrypted volume as
//! well.
//!
//! Idempotent: an interrupted purge is finished by the next run (the journal
//! notes that the purge began, so files already destroyed are not mistaken
//! for lost ones); a purged order is never listed again. Safe to run from a
//! timer.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

use super::PURGE_AFTER_BUSINESS_DAYS;
use crate::calendar::{BusinessCalendar, TURKEY_UTC_OFFSET};
use crate::journal::{Journal, JournalError, PinLetters, SoftDelivery, StrayCardSecrets};
use crate::pkcs11::token::lock;
use crate::production::key_target::soft::PENDING_KEY_FILE_SUFFIX;
use crate::text;

/// How many file names a refusal lists before it only counts.
const NAMES_SHOWN: usize = 5;

/// Why a purge failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PurgeError {
    /// A journal problem.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A file could not be deleted.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl PurgeError {
    /// What kind of failure this is (see [`crate::error`]).
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            PurgeError::Journal(e) => e.kind(),
            PurgeError::Io { .. } => crate::error::ErrorKind::Failure,
        }
    }
}

/// One soft delivery considered.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeItem {
    /// The order.
    pub order: i64,
    /// When it was uploaded.
    pub uploaded_at: String,
    /// Its deadline: the end of this Turkish business day (`None` when it
    /// cannot be computed; `refused` says why).
    pub due: Option<String>,
    /// Whether it is due now.
    pub is_due: bool,
    /// Key files (PKCS#12 files and the password manifest) deleted, or that
    /// would be in a dry run.
    pub files: u64,
    /// Whether the purge was recorded in the journal by this run.
    pub purged: bool,
    /// Symbolic links found in the delivery: removed (in a dry run: would
    /// be), never followed.
    pub links_removed: Vec<String>,
    /// Files in the PKCS#12 folder the journal does not list: left in place.
    pub left_in_place: Vec<String>,
    /// Set when this run purged the order (in a dry run: would purge it) but
    /// leaves files the journal does not list in its PKCS#12 folder: they may
    /// be copies of key material, to inspect and delete by hand. The order is
    /// purged as far as the journal knows, yet the run fails.
    pub left_for_hand: Option<String>,
    /// Why this order was not purged (or not fully); `None` when all is well.
    pub refused: Option<String>,
}

/// One card order's PIN letters considered: the manifest and the PINs and
/// PUKs the journal holds for its cards.
#[derive(Debug, Clone, Serialize)]
pub struct PinLetterItem {
    /// The order.
    pub order: i64,
    /// When the manifest was written.
    pub uploaded_at: String,
    /// Its deadline: the end of this Turkish business day (`None` when it
    /// cannot be computed; `refused` says why).
    pub due: Option<String>,
    /// Whether it is due now.
    pub is_due: bool,
    /// The manifest as recorded.
    pub manifest: String,
    /// Whether the manifest was there to delete (in a dry run: is there).
    pub manifest_found: bool,
    /// Whether the purge was recorded in the journal by this run (the
    /// manifest deleted and the journal's PINs and PUKs erased).
    pub purged: bool,
    /// Why this order's PIN letters were not purged; `None` when all is well.
    pub refused: Option<String>,
}

/// The PIN and PUK held for a card that left the station without a
/// delivered certificate (its certificate void, or an intent never
/// finished), kept only so the station can open that card if it comes back.
#[derive(Debug, Clone, Serialize)]
pub struct StrayCardItem {
    /// The certificate the card carries.
    pub certificate_serial: String,
    /// Its device.
    pub device_serial: String,
    /// The device's order.
    pub order: i64,
    /// When the PIN and PUK were recorded.
    pub recorded_at: String,
    /// Their deadline: the end of this Turkish business day (`None` when it
    /// cannot be computed; `refused` says why).
    pub due: Option<String>,
    /// Whether it is due now.
    pub is_due: bool,
    /// Whether this run erased them.
    pub erased: bool,
    /// Why they were not erased; `None` when all is well.
    pub refused: Option<String>,
}

/// What a purge did.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    /// The time the purge judged deadlines against.
    pub now: String,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Every unpurged soft delivery.
    pub deliveries: Vec<PurgeItem>,
    /// Every card order's PIN letters not purged yet.
    pub pin_letters: Vec<PinLetterItem>,
    /// Every card PIN and PUK held for a certificate that is not issued.
    pub stray_card_secrets: Vec<StrayCardItem>,
    /// Problems not tied to one order (the journal's log could not be truncated).
    pub problems: Vec<String>,
}

impl PurgeReport {
    /// Orders refused, orders purged with files left in their PKCS#12 folder,
    /// plus other problems: the run failed when this is not zero.
    pub fn failures(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.refused.is_some() || d.left_for_hand.is_some())
            .count()
            + self
                .pin_letters
                .iter()
                .filter(|p| p.refused.is_some())
                .count()
            + self
                .stray_card_secrets
                .iter()
                .filter(|c| c.refused.is_some())
                .count()
            + self.problems.len()
    }
}

/// What deleting an order's key material will do, checked before any of it.
#[derive(Debug, Default)]
struct Plan {
    p12_dir: PathBuf,
    /// PKCS#12 files to overwrite and delete.
    shred: Vec<PathBuf>,
    /// The password manifest, when still there.
    passwords: Option<PathBuf>,
    /// Symbolic links to remove.
    links: Vec<PathBuf>,
    /// Files not listed by the journal.
    foreign: Vec<PathBuf>,
}

/// `names` as "a, b, c and N more".
fn some_names(names: &[String]) -> String {
    crate::text::some_of(&names[..names.len().min(NAMES_SHOWN)], names.len())
}

/// The recorded folder as an absolute path. A relative one (journals written
/// before folders were recorded absolute) is resolved against the journal's
/// folder, the same way every time, whatever the working directory.
fn resolve(recorded: &str, journal_dir: &Path) -> PathBuf {
    let path = Path::new(recorded);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        journal_dir.join(path)
    }
}

/// Whether `path` is a regular file with one name: overwriting it changes no
/// file outside the delivery.
fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link, not the key file the journal recorded; not followed",
            path.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.nlink() != 1 {
        return Err(format!(
            "{} has {} names (hard links): overwriting it would change a file outside the delivery",
            path.display(),
            meta.nlink()
        ));
    }
    Ok(())
}

/// Checks that the delivery's key material is where the journal says, and
/// lists what to delete. Nothing is changed.
fn plan(
    delivery: &SoftDelivery,
    expected: &[String],
    journal_dir: &Path,
    out: Option<&Path>,
) -> Result<Plan, String> {
    let folder = resolve(&delivery.folder, journal_dir);
    let legacy = Path::new(&delivery.folder).is_relative();
    let not_found = |what: &Path, e: std::io::Error| {
        let mut reason = format!(
            "delivery folder {} (recorded as {:?}): {e}",
            what.display(),
            delivery.folder
        );
        if legacy {
            reason.push_str(
                "; the journal records this folder relative to the directory `okc produce` ran in, \
                 and purge looks for it next to the journal: put the journal in that directory \
                 (or the delivery root next to the journal) and run the purge again",
            );
        }
        reason
    };
    let meta = std::fs::symlink_metadata(&folder).map_err(|e| not_found(&folder, e))?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(format!(
            "delivery folder {} is not a folder (a symbolic link is not followed)",
            folder.display()
        ));
    }
    let real = std::fs::canonicalize(&folder).map_err(|e| not_found(&folder, e))?;
    if real != folder {
        return Err(format!(
            "delivery folder {} leads to {} through a symbolic link; not followed",
            folder.display(),
            real.display()
        ));
    }
    if let Some(out) = out {
        let root = std::fs::canonicalize(out)
            .map_err(|e| format!("--deliveries {}: {e}", out.display()))?;
        if !folder.starts_with(&root) {
            return Err(format!(
                "the journal records the delivery in {}, which is not in --deliveries {}",
                folder.display(),
                root.display()
            ));
        }
    }

    let mut plan = Plan {
        p12_dir: folder.join("p12"),
        ..Plan::default()
    };
    let mut present = BTreeSet::new();
    match std::fs::symlink_metadata(&plan.p12_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", plan.p12_dir.display())),
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
            return Err(format!(
                "{} is not a folder (a symbolic link is not followed)",
                plan.p12_dir.display()
            ))
        }
        Ok(_) => {
            let entries = std::fs::read_dir(&plan.p12_dir)
                .map_err(|e| format!("{}: {e}", plan.p12_dir.display()))?;
            let expected: BTreeSet<String> = expected.iter().map(|s| format!("{s}.p12")).collect();
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", plan.p12_dir.display()))?;
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if meta.file_type().is_symlink() {
                    if expected.contains(&name) {
                        return Err(format!(
                            "{} is a symbolic link, not the key file the journal recorded; not followed",
                            path.display()
                        ));
                    }
                    plan.links.push(path);
                } else if expected.contains(&name) {
                    check_regular(&path, &meta)?;
                    present.insert(name);
                    plan.shred.push(path);
                } else if name.ends_with(PENDING_KEY_FILE_SUFFIX) && meta.is_file() {
                    // A key file certmint wrote whose certificate the
                    // journal never recorded (a stale producer's): its key
                    // goes with the others.
                    check_regular(&path, &meta)?;
                    plan.shred.push(path);
                } else {
                    plan.foreign.push(path);
                }
            }
            plan.shred.sort();
            plan.links.sort();
            plan.foreign.sort();
        }
    }
    if !delivery.purge_started {
        let missing: Vec<String> = expected
            .iter()
            .map(|s| format!("{s}.p12"))
            .filter(|name| !present.contains(name))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} of the {} PKCS#12 files the journal lists are not in {} ({}); nothing deleted. \
                 Find where the delivery went (the journal may name the wrong folder) before purging it",
                missing.len(),
                expected.len(),
                plan.p12_dir.display(),
                some_names(&missing)
            ));
        }
    }

    let passwords = match &delivery.passwords {
        Some(recorded) => resolve(recorded, journal_dir),
        None => folder
            .parent()
            .unwrap_or(&folder)
            .join(format!("order-{}.passwords.csv", delivery.order)),
    };
    match std::fs::symlink_metadata(&passwords) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && delivery.purge_started => {}
        Err(e) => {
            return Err(format!(
                "password manifest {}: {e}; nothing deleted",
                passwords.display()
            ))
        }
        Ok(meta) => {
            check_regular(&passwords, &meta)?;
            plan.passwords = Some(passwords);
        }
    }
    Ok(plan)
}

/// Overwrites a regular file with zeros, syncs it, and unlinks it. A
/// symbolic link is refused (`O_NOFOLLOW`), and so is anything that is not a
/// regular file with a single name when opened.
pub fn shred(path: &Path) -> Result<(), PurgeError> {
    let failed = |e: std::io::Error| PurgeError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    check_regular(path, &meta).map_err(|reason| PurgeError::Io {
        path: path.display().to_string(),
        reason,
    })?;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = meta.len();
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n]).map_err(failed)?;
        left -= n as u64;
    }
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::remove_file(path).map_err(failed)
}

/// Deletes what `plan` lists; returns the number of key files destroyed.
fn execute(plan: &Plan) -> Result<u64, PurgeError> {
    for link in &plan.links {
        // Removing a link removes only its name, never what it points to.
        std::fs::remove_file(link).map_err(|e| PurgeError::Io {
            path: link.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let mut destroyed = 0;
    for file in plan.shred.iter().chain(&plan.passwords) {
        shred(file)?;
        destroyed += 1;
    }
    if let Some(parent) = plan.passwords.as_ref().and_then(|p| p.parent()) {
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    // Empty unless files the journal does not list are left in it.
    let _ = std::fs::remove_dir(&plan.p12_dir);
    Ok(destroyed)
}

fn shown(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// Purges every soft delivery due at `now`, judged on the Turkish business
/// calendar. The purge is recorded at the real time of the run, whatever
/// `now` says. `journal_dir` resolves folders recorded relative (older
/// journals); with `out`, deliveries recorded outside it are refused.
/// An order that cannot be purged is reported in its item and the others
/// go on; [`PurgeReport::failures`] counts them.
pub fn purge(
    journal: &Mutex<dyn Journal>,
    calendar: &BusinessCalendar,
    journal_dir: &Path,
    out: Option<&Path>,
    now: OffsetDateTime,
    dry_run: bool,
    operator: &str,
) -> Result<PurgeReport, PurgeError> {
    let deliveries = lock(journal).unpurged_soft_deliveries()?;
    let mut items = Vec::new();
    for delivery in deliveries {
        let mut item = PurgeItem {
            order: delivery.order.0,
            uploaded_at: delivery.uploaded_at.clone(),
            due: None,
            is_due: false,
            files: 0,
            purged: false,
            links_removed: Vec::new(),
            left_in_place: Vec::new(),
            left_for_hand: None,
            refused: None,
        };
        if let Err(reason) = purge_one(
            journal,
            calendar,
            &delivery,
            journal_dir,
            out,
            now,
            dry_run,
            operator,
            &mut item,
        ) {
            item.refused = Some(reason);
        }
        items.push(item);
    }
    let unpurged = lock(journal).unpurged_pin_letters()?;
    let mut pin_letters = Vec::new();
    for letters in unpurged {
        let mut item = PinLetterItem {
            order: letters.order.0,
            uploaded_at: letters.uploaded_at.clone(),
            due: None,
            is_due: false,
            manifest: letters.manifest.clone(),
            manifest_found: false,
            purged: false,
            refused: None,
        };
        if let Err(reason) = purge_pin_letters(
            journal,
            calendar,
            &letters,
            journal_dir,
            now,
            dry_run,
            operator,
            &mut item,
        ) {
            item.refused = Some(reason);
        }
        pin_letters.push(item);
    }
    let stray = lock(journal).stray_card_secrets()?;
    let mut stray_card_secrets = Vec::new();
    for card in stray {
        let mut item = StrayCardItem {
            certificate_serial: card.certificate_serial.clone(),
            device_serial: card.device_serial.clone(),
            order: card.order.0,
            recorded_at: card.recorded_at.clone(),
            due: None,
            is_due: false,
            erased: false,
            refused: None,
        };
        if let Err(reason) =
            erase_stray_card_secrets(journal, calendar, &card, now, dry_run, operator, &mut item)
        {
            item.refused = Some(reason);
        }
        stray_card_secrets.push(item);
    }
    let mut problems = Vec::new();
    if !dry_run {
        // Every real run, not only one that purged: a truncation another
        // reader prevented is finished by the next run.
        if let Err(e) = lock(journal).erase_freed_secrets() {
            problems.push(e.to_string());
        }
    }
    Ok(PurgeReport {
        now: crate::timestamp::format(now),
        dry_run,
        deliveries: items,
        pin_letters,
        stray_card_secrets,
        problems,
    })
}

/// The end of the Turkish business day by which a delivery uploaded at
/// `uploaded_at` is purged, and whether `now` is past it.
fn deadline(
    calendar: &BusinessCalendar,
    uploaded_at: &str,
    now: OffsetDateTime,
) -> Result<(String, bool), String> {
    let uploaded =
        OffsetDateTime::parse(uploaded_at, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("upload time {uploaded_at:?}: {e}"))?;
    let deadline = |e: crate::calendar::CalendarError| {
        format!("cannot compute the purge deadline: {e}; extend the calendar (--closed-days) or the holiday table")
    };
    let upload_day = calendar.upload_day(uploaded).map_err(deadline)?;
    let due = calendar
        .purge_deadline(upload_day, PURGE_AFTER_BUSINESS_DAYS)
        .map_err(deadline)?;
    let is_due = calendar
        .is_purge_due(
            upload_day,
            PURGE_AFTER_BUSINESS_DAYS,
            now,
            TURKEY_UTC_OFFSET,
        )
        .map_err(deadline)?;
    Ok((due.to_string(), is_due))
}

/// Purges a card order's PIN letters once due, by the soft rule: the
/// manifest overwritten and deleted (a manifest already gone is noted, not
/// refused: the journal's copy is erased all the same), then every PIN and
/// PUK the journal holds for the order's cards erased, with the audit
/// record. A manifest path that is not a regular file with one name is
/// refused and left alone.
#[allow(clippy::too_many_arguments)]
fn purge_pin_letters(
    journal: &Mutex<dyn Journal>,
    calendar: &BusinessCalendar,
    letters: &PinLetters,
    journal_dir: &Path,
    now: OffsetDateTime,
    dry_run: bool,
    operator: &str,
    item: &mut PinLetterItem,
) -> Result<(), String> {
    let (due, is_due) = deadline(calendar, &letters.uploaded_at, now)?;
    item.due = Some(due);
    item.is_due = is_due;
    let manifest = resolve(&letters.manifest, journal_dir);
    let found = match std::fs::symlink_metadata(&manifest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("PIN letter manifest {}: {e}", manifest.display())),
        Ok(meta) => {
            check_regular(&manifest, &meta)?;
            true
        }
    };
    item.manifest_found = found;
    if !is_due || dry_run {
        return Ok(());
    }
    if found {
        shred(&manifest).map_err(|e| e.to_string())?;
        if let Some(parent) = manifest.parent() {
            let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
        }
    }
    let details = if found {
        "PIN letter manifest overwritten and deleted; the cards' PINs and PUKs erased from the journal"
    } else {
        "PIN letter manifest not found (deleted before this run); the cards' PINs and PUKs erased from the journal"
    };
    lock(journal)
        .record_pin_letters_purged(letters.order, &crate::timestamp::now(), details, operator)
        .map_err(|e| e.to_string())?;
    item.purged = true;
    Ok(())
}

/// Erases the PIN and PUK held for a card that left the station without a
/// delivered certificate, once due: at the end of the 10th Turkish business
/// day after they were recorded, whatever the state of the order. They only
/// let the station open that card if it comes back; after the deadline a
/// card that comes back is refused, never tried with a PIN certmint does
/// not know.
fn erase_stray_card_secrets(
    journal: &Mutex<dyn Journal>,
    calendar: &BusinessCalendar,
    card: &StrayCardSecrets,
    now: OffsetDateTime,
    dry_run: bool,
    operator: &str,
    item: &mut StrayCardItem,
) -> Result<(), String> {
    let (due, is_due) = deadline(calendar, &card.recorded_at, now)?;
    item.due = Some(due);
    item.is_due = is_due;
    if !is_due || dry_run {
        return Ok(());
    }
    let details = format!(
        "device {} (order {}): the PIN and PUK of a card that left the station without a delivered \
         certificate, recorded {}, erased from the journal",
        card.device_serial, card.order, card.recorded_at
    );
    lock(journal)
        .erase_stray_card_secrets(&card.certificate_serial, &details, operator)
        .map_err(|e| e.to_string())?;
    item.erased = true;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn purge_one(
    journal: &Mutex<dyn Journal>,
    calendar: &BusinessCalendar,
    delivery: &SoftDelivery,
    journal_dir: &Path,
    out: Option<&Path>,
    now: OffsetDateTime,
    dry_run: bool,
    operator: &str,
    item: &mut PurgeItem,
) -> Result<(), String> {
    let (due, is_due) = deadline(calendar, &delivery.uploaded_at, now)?;
    item.due = Some(due);
    item.is_due = is_due;

    // The names the journal lists, to tell them from whatever else is in
    // the folder: one set per order purged, freed before the next.
    let mut expected = Vec::new();
    loop {
        let page = lock(journal)
            .pkcs12_serials(
                delivery.order,
                expected.last().map_or(0, |(id, _)| *id),
                1000,
            )
            .map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        expected.extend(page);
    }
    let expected: Vec<String> = expected
        .into_iter()
        .map(|(_, file)| file.device_serial)
        .collect();
    let plan = plan(delivery, &expected, journal_dir, out)?;
    item.files = plan.shred.len() as u64 + u64::from(plan.passwords.is_some());
    item.links_removed = shown(&plan.links);
    item.left_in_place = shown(&plan.foreign);
    if !item.is_due {
        return Ok(());
    }
    if dry_run {
        item.left_for_hand = left_for_hand(&plan, "would be left");
        return Ok(());
    }

    if !delivery.purge_started {
        lock(journal)
            .record_purge_started(delivery.order, operator)
            .map_err(|e| e.to_string())?;
    }
    let destroyed =
        execute(&plan).map_err(|e| format!("{e}; the purge began and the next run finishes it"))?;
    let purged_at = crate::timestamp::now();
    let mut details = format!(
        "{} PKCS#12 file(s) of {} and {} password manifest(s) overwritten and deleted by this run; stored passwords erased",
        plan.shred.len(),
        expected.len(),
        u64::from(plan.passwords.is_some()),
    );
    if delivery.purge_started {
        details.push_str("; an earlier, interrupted run deleted the rest");
    }
    if !plan.links.is_empty() {
        details.push_str(&format!(
            "; {} symbolic link(s) removed, not followed",
            plan.links.len()
        ));
    }
    if !plan.foreign.is_empty() {
        details.push_str(&format!(
            "; {} file(s) not listed by the journal left in {} (to inspect and delete by hand)",
            plan.foreign.len(),
            plan.p12_dir.display()
        ));
    }
    lock(journal)
        .record_purge(delivery.order, &purged_at, &details, operator)
        .map_err(|e| e.to_string())?;
    item.files = destroyed;
    item.purged = true;
    item.left_for_hand = left_for_hand(&plan, "left");
    Ok(())
}

/// What the purge of an order leaves for a person to do: the files in its
/// PKCS#12 folder the journal does not list (a `.bak` copy of a key file,
/// say). certmint never deletes what it did not deliver, so they stay, and
/// the run must not look successful. `None` when there are none. Names are
/// escaped: they come from whoever wrote into the folder.
fn left_for_hand(plan: &Plan, verb: &str) -> Option<String> {
    if plan.foreign.is_empty() {
        return None;
    }
    let names: Vec<String> = plan
        .foreign
        .iter()
        .map(|p| {
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            text::escaped(&name)
        })
        .collect();
    Some(format!(
        "{} file(s) not listed by the journal {verb} in {} ({}): they may be copies of key material; \
         certmint deletes only the files it delivered, so inspect them and delete them by hand",
        names.len(),
        text::escaped(&plan.p12_dir.display().to_string()),
        some_names(&names)
    ))
}
