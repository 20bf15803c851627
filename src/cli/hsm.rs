//! `certmint hsm keygen|list|probe|provision`: parsing and reporting; the
//! token work is [`certmint::pkcs11`]'s and the production room's.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use certmint::ca;
use certmint::ids::IdMode;
use certmint::journal::{OrderId, Target};
use certmint::pkcs11::{PinSource, Pkcs11Uri, Token};
use certmint::production::seals::provision_seals_on_token;
use certmint::production::setup::{IssuingCa, OpenedTarget, ProductionSetup, SetupRequest};
use certmint::profile::ProfileName;
use certmint::signer::KeyType;

#[derive(Subcommand)]
pub(crate) enum HsmCommand {
    /// Key ceremony: generate a CA key pair inside a token (refuses a label in use).
    Keygen(HsmKeygenArgs),
    /// Preflight a token: library, mechanisms, sessions, memory, labels in use.
    Probe(HsmProbeArgs),
    /// Generate a Mali Mühür key in a customer's token and import its certificate beside it.
    Provision(HsmProvisionArgs),
    /// List a module's slots and tokens, or one token's objects (reading only).
    List(HsmListArgs),
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm list --module-name softhsm2\n  \
certmint hsm list --module-path /usr/lib/vendor/libpkcs11.so --json\n  \
certmint hsm list --token 'pkcs11:token=musteri?module-path=/usr/lib/vendor/libpkcs11.so'\n  \
certmint hsm list --token 'pkcs11:token=musteri?pin-source=file:musteri.pin' --login\n\n\
Without --token: every slot of the module, with its token's label, manufacturer, model and serial\n\
(the values a URI's token=, manufacturer=, model=, serial= and slot-id= take).\n\
With --token: the token's objects (class, label, CKA_ID, key type, flags such as sign, sensitive,\n\
extractable); private objects only with --login.\n{URI_HELP}"))]
pub(crate) struct HsmListArgs {
    /// List this token's objects: a pkcs11: URI with token= or serial=.
    #[arg(long, conflicts_with_all = ["module_path", "module_name"])]
    token: Option<String>,
    /// Log in to the token (PIN from pin-source, --token-pin-env or a prompt) to list private objects too.
    #[arg(long, requires = "token")]
    login: bool,
    /// The PKCS#11 module whose slots to list (default: $CERTMINT_PKCS11_MODULE, else p11-kit's proxy).
    #[arg(long)]
    module_path: Option<PathBuf>,
    /// The module p11-kit registered under this name (e.g. softhsm2, opensc-pkcs11).
    #[arg(long, conflicts_with = "module_path")]
    module_name: Option<String>,
    /// Environment variable holding the token's user PIN (with --login, when the URI has no pin-source).
    #[arg(long, requires = "login")]
    token_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const URI_HELP: &str = "\n\
Token URIs are RFC 7512: pkcs11:token=LABEL[;object=KEYLABEL]?module-path=MODULE&pin-source=file:PINFILE\n\
module-name=NAME loads the module p11-kit registered as NAME; without either, $CERTMINT_PKCS11_MODULE,\n\
else p11-kit's proxy when installed.\n\
The PIN comes from pin-source, else from the variable named by --token-pin-env (--ca-pin-env for the CA key),\n\
else a prompt; never from arguments.";

#[derive(Args)]
#[command(after_help = format!("Example:\n  certmint hsm keygen --key 'pkcs11:token=ca;object=issuing-2026?pin-source=file:/run/secrets/ca.pin' --key-type p384\n{URI_HELP}"))]
pub(crate) struct HsmKeygenArgs {
    /// The key to create: a pkcs11: URI with token= and object= (the label).
    #[arg(long)]
    key: String,
    /// p384, p256, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
    /// Environment variable holding the token's user PIN (when the URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm probe --token 'pkcs11:token=musteri?module-path=/usr/lib/vendor/libpkcs11.so'\n  certmint hsm probe --token 'pkcs11:token=musteri?pin-source=file:pin' --vkn 4540536920 --json\n{URI_HELP}"))]
pub(crate) struct HsmProbeArgs {
    /// The token: a pkcs11: URI with token= or serial=.
    #[arg(long)]
    token: String,
    /// Key types to check mechanisms for (repeatable; default rsa2048 and p384).
    #[arg(long = "key-type")]
    key_types: Vec<KeyType>,
    /// Check that {VKN}SIGN0 is free (needs the PIN; repeatable).
    #[arg(long)]
    vkn: Vec<String>,
    /// Check that this label is free (needs the PIN; repeatable).
    #[arg(long)]
    label: Vec<String>,
    /// Environment variable holding the token's user PIN (when the URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm provision --ca ./ca --token 'pkcs11:token=musteri?pin-source=file:musteri.pin' \\\n      --vkn 4540536920 --unvan 'Örnek Bilişim A.Ş.' --key-type p384 --out seal.pem\n  \
certmint hsm provision --ca ./ca --order 7 --token 'pkcs11:token=musteri?pin-source=file:musteri.pin'\n\n\
Writes a key pair labelled with the company's next seal number {{VKN}}SIGN<n> (counting every seal it\n\
has on record; CKA_ID = SHA-1 of the public key) and the certificate beside it, then reads everything\n\
back: attributes, public key match, a test signature. The seal is on record in a one-off order\n\
(intent before the CA signs, the certificate after).\n\
With --order, provisions every seal of a paid Mali Mühür order for the hsm target: the company,\n\
the key type and the labels ({{VKN}}SIGN0, SIGN1, …) come from the order; each seal is journalled\n\
(intent before signing), a re-run resumes and issues nothing twice, and the delivery goes to\n\
DELIVERIES/order-N.\n{URI_HELP}"))]
pub(crate) struct HsmProvisionArgs {
    /// The CA directory made by `certmint ca init` (its key may itself be a pkcs11: URI).
    #[arg(long)]
    ca: PathBuf,
    /// The customer's token: a pkcs11: URI with token= or serial=.
    #[arg(long)]
    token: String,
    /// Provision the seals of this journalled Mali Mühür order (target hsm).
    #[arg(long)]
    order: Option<i64>,
    #[command(flatten)]
    journal: super::orders::JournalArgs,
    /// With --order: the delivery root (the order's folder is DELIVERIES/order-N).
    #[arg(long, default_value = "deliveries")]
    deliveries: PathBuf,
    /// With --order, when another producer holds the order: wait up to SECONDS for it
    /// to finish (default: refuse at once, naming it; exit 7).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    wait: u64,
    #[command(flatten)]
    seal: super::SealSubjectArgs,
    /// rsa2048 or p384 (the Mali Mühür key types; default p384); with --order, the order's key type is used.
    #[arg(long)]
    key_type: Option<KeyType>,
    /// Replace objects that already carry the label.
    #[arg(long)]
    replace: bool,
    /// Also write the certificate here as PEM.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Environment variable holding the customer token's user PIN (when its URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Environment variable holding the CA token's PIN (when the CA key is a pkcs11: URI without pin-source).
    #[arg(long)]
    ca_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn hsm_keygen(args: HsmKeygenArgs) -> Result<()> {
    let uri = Pkcs11Uri::parse(&args.key)?.require_object()?;
    if uri.id.is_some() {
        usage!("leave id= out of the key URI: certmint sets CKA_ID to the SHA-1 of the public key");
    }
    let label = uri.object.clone().unwrap_or_default();
    let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
    let token = Token::open(&uri, &pins, Some(1))?;
    let pair = certmint::pkcs11::keys::generate_key_pair(&token, args.key_type, &label, false)?;
    let public_pem =
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &pair.spki_der)?;
    if args.json {
        let json = serde_json::json!({
            "token": token.label(),
            "label": label,
            "id": certmint::pem::hex(&pair.id),
            "key_type": args.key_type.to_string(),
            "public_key_pem": public_pem,
        });
        super::json::print("hsm.keygen", &json)?;
    } else {
        println!(
            "Generated {} key pair {label:?} in token {:?}, CKA_ID {}\n{public_pem}",
            args.key_type,
            token.label(),
            certmint::pem::hex(&pair.id)
        );
    }
    Ok(())
}

pub(crate) fn hsm_list(args: HsmListArgs) -> Result<()> {
    use certmint::pkcs11::list;
    let Some(token) = &args.token else {
        let module_path = match (&args.module_path, &args.module_name) {
            (Some(path), _) => path.clone(),
            (None, Some(name)) => {
                certmint::pkcs11::registry::Registry::system().module_path(name)?
            }
            (None, None) => match std::env::var_os("CERTMINT_PKCS11_MODULE") {
                Some(path) => PathBuf::from(path),
                None => certmint::pkcs11::registry::default_module()?,
            },
        };
        let slots = list::slots(&module_path)?;
        if args.json {
            super::json::print_list("hsm.list.slots", "slots", &slots)?;
        } else {
            println!("Module {}", module_path.display());
            print!("{}", list::slots_text(&slots));
        }
        return Ok(());
    };
    let uri = Pkcs11Uri::parse(token)?;
    let (objects, more) = if args.login {
        let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
        list::objects(&*Token::open(&uri, &pins, Some(1))?)?
    } else {
        list::public_objects(&uri)?
    };
    if args.json {
        let json = serde_json::json!({ "objects": objects, "more": more, "logged_in": args.login });
        super::json::print("hsm.list.objects", &json)?;
    } else {
        print!("{}", list::objects_text(&objects, more));
        if !args.login {
            println!("(public objects only: add --login to list private keys)");
        }
    }
    Ok(())
}

pub(crate) fn hsm_probe(args: HsmProbeArgs) -> Result<()> {
    let uri = Pkcs11Uri::parse(&args.token)?;
    let key_types = if args.key_types.is_empty() {
        vec![KeyType::Rsa(2048), KeyType::EcP384]
    } else {
        args.key_types.clone()
    };
    let mut labels = Vec::new();
    for vkn in &args.vkn {
        labels.push(format!(
            "{}SIGN0",
            certmint::ids::Vkn::parse(vkn, IdMode::Production)?
        ));
    }
    labels.extend(args.label.iter().cloned());
    let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
    let report = certmint::pkcs11::probe::probe(&uri, &key_types, &labels, &pins)?;
    if args.json {
        super::json::print("hsm.probe", &report)?;
    } else {
        print!("{}", report.to_text());
    }
    if !report.ready {
        // Its own exit code, so that a script can gate the session on it.
        return Err(certmint::error::NotReady(format!("token {:?}", report.token.label)).into());
    }
    Ok(())
}

pub(crate) fn hsm_provision(args: HsmProvisionArgs) -> Result<()> {
    // Everything is checked before the customer's token is touched.
    let uri = Pkcs11Uri::parse(&args.token)?;
    if uri.object.is_some() || uri.id.is_some() {
        usage!("name only the token in --token: the label is {{VKN}}SIGN0 and the CKA_ID comes from the key");
    }
    if let Some(order) = args.order {
        if args.seal.names_a_company()
            || args.key_type.is_some()
            || args.replace
            || args.out.is_some()
        {
            usage!("with --order the company, the key type and the labels come from the order: leave out --vkn, --tckn, --unvan, --key-type, --replace and --out");
        }
        return provision_seal_order(&args, &uri, order);
    }
    let (profile, subject, id_mode) =
        super::mali_muhur_subject(&args.ca, &args.seal, args.out.as_ref())?;
    let journal = std::sync::Mutex::new(args.journal.open()?);
    let operator = args.journal.operator()?;
    let unlock = super::unlock(args.ca_pin_env.clone(), 1);
    let IssuingCa { ca, .. } = IssuingCa::open(&args.ca, ProfileName::MaliMuhur, id_mode, &unlock)?;
    let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
    let token = Token::open(&uri, &pins, Some(1))?;
    let report = certmint::production::seals::provision_one_off_seal(
        &journal,
        &ca,
        &profile,
        token,
        &certmint::production::seals::OneOffSealRequest {
            subject: &subject,
            key_type: args.key_type.unwrap_or(KeyType::EcP384),
            replace: args.replace,
            operator: &operator,
            source: "certmint hsm provision",
        },
    )?;
    if let Some(out) = &args.out {
        ca::write_new_file(out, report.certificate_pem.as_bytes(), 0o644)?;
    }
    if args.json {
        super::json::print("hsm.provision", &report)?;
    } else {
        println!(
            "Provisioned {:?} in token {:?}: CKA_ID {}, certificate {}",
            report.label, report.token, report.id, report.serial
        );
        println!("On record in one-off order {}.", report.order);
        if report.removed_leftovers > 0 {
            println!(
                "Removed {} leftover object(s) of an interrupted earlier run.",
                report.removed_leftovers
            );
        }
        if report.replaced_objects > 0 {
            println!(
                "Replaced {} object(s) that carried the label.",
                report.replaced_objects
            );
        }
        for check in &report.checks {
            println!("  ok  {check}");
        }
    }
    Ok(())
}

/// Provisions every seal of a paid Mali Mühür order (hsm target) in the
/// company's token, through the same journalled production as ÖKC
/// batches: intent before signing, recovery of an interrupted run, delivery.
fn provision_seal_order(args: &HsmProvisionArgs, token: &Pkcs11Uri, order: i64) -> Result<()> {
    let journal = std::sync::Mutex::new(args.journal.open()?);
    let request = SetupRequest {
        order: OrderId(order),
        profile: Some(ProfileName::MaliMuhur),
        target: Some(Target::Hsm),
        ca_dir: &args.ca,
        ca_unlock: super::unlock(args.ca_pin_env.clone(), 1),
        id_mode: args.seal.id_mode(),
        closed_days: None,
        operator: args.journal.operator()?,
        lease_wait: std::time::Duration::from_secs(args.wait),
        on_ctrl_c: Some(super::ctrl_c_notice("seal")),
    };
    let (setup, token) = ProductionSetup::open(&journal, request, |_| {
        let pins = PinSource::choose(token.pin_source.clone(), args.token_pin_env.as_deref());
        let token = Token::open(token, &pins, Some(1))?;
        Ok::<_, anyhow::Error>(OpenedTarget {
            target: token,
            workers: 1,
        })
    })?;
    let production = setup.production(args.deliveries.clone(), &|| {});
    let report = provision_seals_on_token(&production, &journal, token)?;
    super::orders::report_production(&report, args.json, "seal(s) provisioned")
}

pub(crate) fn hsm(command: HsmCommand) -> Result<()> {
    match command {
        HsmCommand::Keygen(args) => hsm_keygen(args),
        HsmCommand::Probe(args) => hsm_probe(args),
        HsmCommand::Provision(args) => hsm_provision(args),
        HsmCommand::List(args) => hsm_list(args),
    }
}
