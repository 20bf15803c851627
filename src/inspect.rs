//! A readable summary of a certificate, for operators (`certmint inspect`)
//! and scripts (`--json`). String types are shown because the profiles
//! prescribe them.

use std::fmt::Write as _;

use const_oid::db::rfc4519;
use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_QT_CPS, ID_QT_UNOTICE};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::Ia5String;
use der::{Decode, Encode, Tag, Tagged};
use serde::Serialize;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::issue::tbs::BmpUserNotice;
use crate::pem::{hex, hex_colons};
use crate::signer::{KeyType, SignatureAlgorithm};

/// One attribute of a name.
#[derive(Debug, Clone, Serialize)]
pub struct NameAttribute {
    /// Short name (`CN`, `serialNumber`, …) or the OID.
    pub attribute: String,
    /// The value.
    pub value: String,
    /// `PrintableString`, `UTF8String`, …
    pub string_type: String,
}

/// One extension, decoded where certmint knows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionSummary {
    /// Its OID.
    pub oid: String,
    /// Its name.
    pub name: String,
    /// Its criticality.
    pub critical: bool,
    /// Its value, in words.
    pub value: String,
}

/// What `certmint inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateSummary {
    /// Subject attributes in order.
    pub subject: Vec<NameAttribute>,
    /// Issuer attributes in order.
    pub issuer: Vec<NameAttribute>,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Subject key type (`p256`, `rsa2048`, …).
    pub public_key: String,
    /// Signature algorithm.
    pub signature_algorithm: String,
    /// SHA-256 of the DER, colon-separated hex.
    pub sha256_fingerprint: String,
    /// Extensions in certificate order.
    pub extensions: Vec<ExtensionSummary>,
}

/// The names OpenSSL and RFC 4514 use; anything else by its OID database name or number.
fn attribute_name(oid: &ObjectIdentifier) -> String {
    let known = match *oid {
        rfc4519::CN => "CN",
        rfc4519::C => "C",
        rfc4519::O => "O",
        rfc4519::OU => "OU",
        rfc4519::L => "L",
        rfc4519::ST => "ST",
        rfc4519::SERIAL_NUMBER => "serialNumber",
        BasicConstraints::OID => "basicConstraints",
        KeyUsage::OID => "keyUsage",
        ExtendedKeyUsage::OID => "extKeyUsage",
        CertificatePolicies::OID => "certificatePolicies",
        SubjectKeyIdentifier::OID => "subjectKeyIdentifier",
        AuthorityKeyIdentifier::OID => "authorityKeyIdentifier",
        CrlDistributionPoints::OID => "cRLDistributionPoints",
        AuthorityInfoAccessSyntax::OID => "authorityInfoAccess",
        _ => {
            return const_oid::db::DB
                .by_oid(oid)
                .map(str::to_owned)
                .unwrap_or_else(|| oid.to_string())
        }
    };
    known.to_owned()
}

fn string_type(tag: Tag) -> String {
    match tag {
        Tag::PrintableString => "PrintableString".into(),
        Tag::Utf8String => "UTF8String".into(),
        Tag::Ia5String => "IA5String".into(),
        Tag::BmpString => "BMPString".into(),
        other => format!("{other:?}"),
    }
}

fn name_attributes(name: &Name) -> Vec<NameAttribute> {
    name.iter()
        .map(|atv| NameAttribute {
            attribute: attribute_name(&atv.oid),
            value: String::from_utf8_lossy(atv.value.value()).into_owned(),
            string_type: string_type(atv.value.tag()),
        })
        .collect()
}

fn uri(name: &GeneralName) -> String {
    match name {
        GeneralName::UniformResourceIdentifier(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

fn describe(ext: &Extension) -> (String, String) {
    let bytes = ext.extn_value.as_bytes();
    let decoded: Option<String> = match ext.extn_id {
        BasicConstraints::OID => BasicConstraints::from_der(bytes).ok().map(|bc| {
            let mut s = format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" });
            if let Some(n) = bc.path_len_constraint {
                let _ = write!(s, ", pathlen:{n}");
            }
            s
        }),
        KeyUsage::OID => KeyUsage::from_der(bytes).ok().map(|ku| {
            ku.0.into_iter()
                .map(|u| format!("{u:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ExtendedKeyUsage::OID => ExtendedKeyUsage::from_der(bytes).ok().map(|eku| {
            eku.0
                .iter()
                .map(|oid| match oid.to_string().as_str() {
                    crate::profile::MALI_MUHUR_EKU_OID => format!("{oid} (Mali Mühür)"),
                    _ => match const_oid::db::DB.by_oid(oid) {
                        Some(name) => format!("{oid} ({name})"),
                        None => oid.to_string(),
                    },
                })
                .collect::<Vec<_>>()
                .join(", ")
        }),
        CertificatePolicies::OID => CertificatePolicies::from_der(bytes).ok().map(|cp| {
            cp.0.iter()
                .map(|info| {
                    let mut s = format!("policy {}", info.policy_identifier);
                    for q in info.policy_qualifiers.iter().flatten() {
                        let Some(any) = &q.qualifier else { continue };
                        if q.policy_qualifier_id == ID_QT_CPS {
                            if let Ok(cps) = any.decode_as::<Ia5String>() {
                                let _ = write!(s, "; CPS {cps}");
                            }
                        } else if q.policy_qualifier_id == ID_QT_UNOTICE {
                            match any.decode_as::<BmpUserNotice>() {
                                Ok(n) => {
                                    let text: String = n.explicit_text.chars().collect();
                                    let _ = write!(s, "; UserNotice (BMPString) {text:?}");
                                }
                                Err(_) => s.push_str("; UserNotice (not BMPString)"),
                            }
                        }
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(" | ")
        }),
        SubjectKeyIdentifier::OID => SubjectKeyIdentifier::from_der(bytes)
            .ok()
            .map(|ski| hex_colons(ski.0.as_bytes())),
        AuthorityKeyIdentifier::OID => AuthorityKeyIdentifier::from_der(bytes).ok().map(|aki| {
            aki.key_identifier
                .map(|k| hex_colons(k.as_bytes()))
                .unwrap_or_default()
        }),
        CrlDistributionPoints::OID => CrlDistributionPoints::from_der(bytes).ok().map(|dps| {
            dps.0
                .iter()
                .filter_map(|dp| match &dp.distribution_point {
                    Some(DistributionPointName::FullName(names)) => {
                        Some(names.iter().map(uri).collect::<Vec<_>>().join(", "))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(", ")
        }),
        AuthorityInfoAccessSyntax::OID => {
            AuthorityInfoAccessSyntax::from_der(bytes).ok().map(|aia| {
                aia.0
                    .iter()
                    .map(|ad| {
                        let method = match ad.access_method {
                            ID_AD_CA_ISSUERS => "caIssuers".to_owned(),
                            ID_AD_OCSP => "OCSP".to_owned(),
                            other => other.to_string(),
                        };
                        format!("{method} {}", uri(&ad.access_location))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        }
        _ => None,
    };
    let name = attribute_name(&ext.extn_id);
    (
        name,
        decoded.unwrap_or_else(|| format!("({} bytes)", bytes.len())),
    )
}

/// Summarises a DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertificateSummary, der::Error> {
    let cert = Certificate::from_der(der)?;
    let tbs = cert.tbs_certificate();
    let spki_der = tbs.subject_public_key_info().to_der()?;
    let public_key = KeyType::of_public_key(&spki_der)
        .map(|k| k.to_string())
        .unwrap_or_else(|_| tbs.subject_public_key_info().algorithm.oid.to_string());
    let algorithm = SignatureAlgorithm::from_algorithm_identifier(cert.signature_algorithm())
        .map(|a| a.to_string())
        .unwrap_or_else(|| cert.signature_algorithm().oid.to_string());
    let extensions = tbs
        .extensions()
        .into_iter()
        .flatten()
        .map(|ext| {
            let (name, value) = describe(ext);
            ExtensionSummary {
                oid: ext.extn_id.to_string(),
                name,
                critical: ext.critical,
                value,
            }
        })
        .collect();
    Ok(CertificateSummary {
        subject: name_attributes(tbs.subject()),
        issuer: name_attributes(tbs.issuer()),
        serial: hex(tbs.serial_number().as_bytes()),
        not_before: tbs.validity().not_before.to_date_time().to_string(),
        not_after: tbs.validity().not_after.to_date_time().to_string(),
        public_key,
        signature_algorithm: algorithm,
        sha256_fingerprint: hex_colons(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref(),
        ),
        extensions,
    })
}

impl CertificateSummary {
    /// The summary as indented text.
    /// Values read from the certificate are shown on one line each, with
    /// control and bidirectional formatting characters escaped
    /// ([`crate::text::one_line`]): the certificate may be anyone's.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let names = |attrs: &[NameAttribute]| {
            attrs
                .iter()
                .map(|a| {
                    format!(
                        "      {} = {} ({})",
                        a.attribute,
                        crate::text::one_line(&a.value),
                        a.string_type
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let _ = writeln!(out, "Subject:\n{}", names(&self.subject));
        let _ = writeln!(out, "Issuer:\n{}", names(&self.issuer));
        let _ = writeln!(out, "Serial:              {}", self.serial);
        let _ = writeln!(out, "Not before:          {}", self.not_before);
        let _ = writeln!(out, "Not after:           {}", self.not_after);
        let _ = writeln!(out, "Public key:          {}", self.public_key);
        let _ = writeln!(out, "Signature algorithm: {}", self.signature_algorithm);
        let _ = writeln!(out, "SHA-256 fingerprint: {}", self.sha256_fingerprint);
        let _ = writeln!(out, "Extensions:");
        for ext in &self.extensions {
            let critical = if ext.critical { " [critical]" } else { "" };
            let _ = writeln!(
                out,
                "      {}{critical}: {}",
                ext.name,
                crate::text::one_line(&ext.value)
            );
        }
        out
    }
}

/// A PKCS#10 request, as `certmint inspect` shows it. Only a request whose
/// signature verifies with its own key is shown.
#[derive(Debug, Clone, Serialize)]
pub struct RequestSummary {
    /// Subject attributes in order.
    pub subject: Vec<NameAttribute>,
    /// The requested key type (`p256`, `rsa2048`, …).
    pub public_key: String,
    /// The request's signature algorithm.
    pub signature_algorithm: String,
    /// Whether its signature verifies with its own key (always true: a
    /// request that does not verify is refused).
    pub signature_verified: bool,
}

/// One entry of a PKCS#12 file. The private key itself is never shown.
#[derive(Debug, Clone, Serialize)]
pub struct Pkcs12Entry {
    /// The entry's friendly name.
    pub alias: String,
    /// `private-key-chain`, `certificate` or `secret`.
    pub entry: &'static str,
    /// The localKeyId of a key and its certificate, hex.
    pub local_key_id: Option<String>,
    /// Its certificates, the leaf first.
    pub certificates: Vec<CertificateSummary>,
}

/// A PKCS#12 file, as `certmint inspect` shows it (its MAC checked with
/// the password, its bags decrypted).
#[derive(Debug, Clone, Serialize)]
pub struct Pkcs12Summary {
    /// Its entries.
    pub entries: Vec<Pkcs12Entry>,
}

/// What a file holds; in JSON, `kind` says which.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Inspected {
    /// One certificate (PEM or DER).
    Certificate(CertificateSummary),
    /// Several certificates, as a chain PEM holds them, in file order.
    Chain {
        /// The certificates.
        certificates: Vec<CertificateSummary>,
    },
    /// A PKCS#10 request.
    #[serde(rename = "certificate-request")]
    Request(RequestSummary),
    /// A PKCS#12 file.
    Pkcs12(Pkcs12Summary),
}

/// The most PEM blocks read from one file.
pub const MAX_PEM_BLOCKS: usize = 1_000;

/// Why a file could not be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// Not anything certmint inspects.
    #[error("{what}: {reason}")]
    Unreadable {
        /// The file.
        what: String,
        /// Why.
        reason: String,
    },
    /// A DER file that is none of the above: perhaps a PKCS#12 file, which
    /// needs its password.
    #[error("{what} is not a certificate or a certificate request; if it is a PKCS#12 file, give its password with --password-file FILE or --password-env VAR")]
    NeedsPassword {
        /// The file.
        what: String,
    },
    /// A request that does not verify, or holds a key certmint refuses.
    #[error(transparent)]
    Request(#[from] crate::request::RequestError),
}

impl InspectError {
    /// A file certmint cannot read as any of its kinds, or a request that
    /// does not verify, is invalid input; a PKCS#12 file given without its
    /// password is a usage error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            InspectError::Unreadable { .. } => ErrorKind::InvalidInput,
            InspectError::NeedsPassword { .. } => ErrorKind::Usage,
            InspectError::Request(e) => e.kind(),
        }
    }
}

/// Reads what `bytes` (the file `what`) hold: PEM certificates (one or a
/// chain), a PEM or DER request, a DER certificate, or — with its password
/// — a PKCS#12 file.
pub fn inspect(
    bytes: &[u8],
    what: &str,
    pkcs12_password: Option<&str>,
) -> Result<Inspected, InspectError> {
    let unreadable = |reason: String| InspectError::Unreadable {
        what: what.to_owned(),
        reason,
    };
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let blocks = pem_blocks(bytes).map_err(unreadable)?;
        if blocks.is_empty() {
            return Err(unreadable("holds no whole PEM block".into()));
        }
        let labels: Vec<&str> = blocks.iter().map(|(label, _)| label.as_str()).collect();
        if labels.iter().all(|l| *l == "CERTIFICATE") {
            let mut summaries = blocks
                .iter()
                .enumerate()
                .map(|(i, (_, der))| {
                    summarize(der).map_err(|e| unreadable(format!("certificate {}: {e}", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if summaries.len() == 1 {
                Inspected::Certificate(summaries.remove(0))
            } else {
                Inspected::Chain {
                    certificates: summaries,
                }
            });
        }
        if let [label] = labels[..] {
            if label == "CERTIFICATE REQUEST" || label == "NEW CERTIFICATE REQUEST" {
                return Ok(Inspected::Request(summarize_request(&blocks[0].1, what)?));
            }
        }
        return Err(unreadable(format!(
            "holds PEM blocks labelled {}; certmint inspects CERTIFICATE (one or a chain) or one CERTIFICATE REQUEST",
            labels
                .iter()
                .map(|l| crate::text::quoted(l))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Ok(summary) = summarize(bytes) {
        return Ok(Inspected::Certificate(summary));
    }
    if x509_cert::request::CertReq::from_der(bytes).is_ok() {
        return Ok(Inspected::Request(summarize_request(bytes, what)?));
    }
    match pkcs12_password {
        None => Err(InspectError::NeedsPassword {
            what: what.to_owned(),
        }),
        Some(password) => summarize_pkcs12(bytes, password).map_err(unreadable),
    }
}

/// The PEM blocks of a text, in order, as (label, DER).
fn pem_blocks(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "PEM text that is not UTF-8".to_owned())?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block[11..]
            .find("-----")
            .ok_or_else(|| "a BEGIN line that does not end".to_owned())?;
        let label = &block[11..11 + label_end];
        let end_line = format!("-----END {label}-----");
        let end = block
            .find(&end_line)
            .ok_or_else(|| format!("no END line for {}", crate::text::quoted(label)))?;
        let (found, der) = der::pem::decode_vec(&block.as_bytes()[..end + end_line.len()])
            .map_err(|e| format!("PEM block {}: {e}", blocks.len() + 1))?;
        blocks.push((found.to_owned(), der));
        if blocks.len() > MAX_PEM_BLOCKS {
            return Err(format!("more than {MAX_PEM_BLOCKS} PEM blocks"));
        }
        rest = &block[end + end_line.len()..];
    }
    Ok(blocks)
}

fn summarize_request(der: &[u8], what: &str) -> Result<RequestSummary, InspectError> {
    // Verifies the self-signature and checks the key as `issue` would.
    let spki = crate::request::public_key_from_csr(der, what)?;
    let request =
        x509_cert::request::CertReq::from_der(der).map_err(|e| InspectError::Unreadable {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(RequestSummary {
        subject: name_attributes(&request.info.subject),
        public_key: KeyType::of_public_key(&spki)
            .map(|k| k.to_string())
            .unwrap_or_else(|_| request.info.public_key.algorithm.oid.to_string()),
        signature_algorithm: SignatureAlgorithm::from_algorithm_identifier(&request.algorithm)
            .map(|a| a.to_string())
            .unwrap_or_else(|| request.algorithm.oid.to_string()),
        signature_verified: true,
    })
}

fn summarize_pkcs12(der: &[u8], password: &str) -> Result<Inspected, String> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let store =
        KeyStore::from_pkcs12(der, password, Pkcs12ImportPolicy::Relaxed).map_err(|e| match e {
            p12_keystore::error::Error::MacError(_) => {
                "the password does not open this PKCS#12 file (its MAC does not verify)".to_owned()
            }
            other => format!("not a PKCS#12 file certmint can read: {other}"),
        })?;
    let certificates = |certs: &[p12_keystore::Certificate]| {
        certs
            .iter()
            .map(|c| summarize(c.as_der()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut entries = Vec::new();
    for (alias, entry) in store.entries() {
        entries.push(match entry {
            KeyStoreEntry::PrivateKeyChain(chain) => Pkcs12Entry {
                alias: crate::text::escaped(alias),
                entry: "private-key-chain",
                local_key_id: Some(hex(chain.local_key_id().as_ref())),
                certificates: certificates(chain.certs())?,
            },
            KeyStoreEntry::Certificate(certificate) => Pkcs12Entry {
                alias: crate::text::escaped(alias),
                entry: "certificate",
                local_key_id: None,
                certificates: certificates(std::slice::from_ref(certificate))?,
            },
            KeyStoreEntry::Secret(_) => Pkcs12Entry {
                alias: crate::text::escaped(alias),
                entry: "secret",
                local_key_id: None,
                certificates: Vec::new(),
            },
        });
    }
    Ok(Inspected::Pkcs12(Pkcs12Summary { entries }))
}

impl Inspected {
    /// What the file holds, as text for an operator.
    pub fn to_text(&self) -> String {
        match self {
            Inspected::Certificate(summary) => summary.to_text(),
            Inspected::Chain {
                certificates: summaries,
            } => summaries
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "Certificate {} of {}\n{}",
                        i + 1,
                        summaries.len(),
                        s.to_text()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Inspected::Request(request) => {
                let mut out = String::from("Certificate request (signature verified)\nSubject:\n");
                for a in &request.subject {
                    let _ = writeln!(
                        out,
                        "      {} = {} ({})",
                        a.attribute,
                        crate::text::one_line(&a.value),
                        a.string_type
                    );
                }
                let _ = writeln!(out, "Public key:          {}", request.public_key);
                let _ = writeln!(out, "Signature algorithm: {}", request.signature_algorithm);
                out
            }
            Inspected::Pkcs12(p12) => {
                let mut out = String::from("PKCS#12 file (MAC verified)\n");
                for entry in &p12.entries {
                    let _ = writeln!(
                        out,
                        "Entry {} ({}{}), {} certificate(s)",
                        crate::text::quoted(&entry.alias),
                        entry.entry,
                        entry
                            .local_key_id
                            .as_ref()
                            .map(|id| format!(", localKeyId {id}"))
                            .unwrap_or_default(),
                        entry.certificates.len()
                    );
                    for (i, c) in entry.certificates.iter().enumerate() {
                        let _ = writeln!(out, "\nCertificate {} of entry:", i + 1);
                        out += &c.to_text();
                    }
                }
                out
            }
        }
    }
}
