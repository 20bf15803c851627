//! RFC 7512 URIs against a real SoftHSM2: every token, slot and module
//! attribute a URI gives is matched, never ignored, and `module-name=` finds
//! a module through its p11-kit registration.

mod common;

use common::{softhsm_module, Hsm, Run, Workspace};
use std::process::Command;

/// The slot ids of the tokens labelled `label`, as OpenSC's pkcs11-tool
/// lists them (an independent reader of the slots).
fn slots_of(hsm: &Hsm, label: &str) -> Vec<u64> {
    let out = Command::new("pkcs11-tool")
        .args(["--module", &softhsm_module(), "--list-token-slots"])
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .expect("run pkcs11-tool (install opensc)");
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut slots = Vec::new();
    let mut slot = None;
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("Slot ") {
            // "Slot 0 (0x3ae906ab): SoftHSM slot ID 0x3ae906ab"
            slot = rest
                .split_once("(0x")
                .and_then(|(_, hex)| hex.split_once(')'))
                .and_then(|(hex, _)| u64::from_str_radix(hex, 16).ok());
        } else if line.trim() == format!("token label        : {label}") {
            slots.extend(slot);
        }
    }
    slots
}

fn keygen(ws: &Workspace, hsm: &Hsm, uri: &str) -> Run {
    ws.certmint_env(
        &["hsm", "keygen", "--key", uri, "--key-type", "p256"],
        &[("SOFTHSM2_CONF", &hsm.conf())],
    )
}

/// The labels of the private keys in `slot`, read by pkcs11-tool.
fn private_keys_in_slot(hsm: &Hsm, slot: u64) -> String {
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            &softhsm_module(),
            "--slot",
            &slot.to_string(),
            "--login",
            "--pin",
            &hsm.pin(),
            "--list-objects",
            "--type",
            "privkey",
        ])
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .expect("run pkcs11-tool");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn slot_id_picks_the_token_in_that_slot_and_never_another() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["twin", "twin"], "ALL");
    let slots = slots_of(&hsm, "twin");
    assert_eq!(slots.len(), 2, "two tokens labelled twin: {slots:?}");
    let query = format!(
        "module-path={}&pin-source=file:{}",
        softhsm_module(),
        hsm.pin_file()
    );

    // The label alone is ambiguous: refused, nothing written.
    let run = keygen(&ws, &hsm, &format!("pkcs11:token=twin;object=k?{query}"));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("2 tokens match"), "{}", run.stderr);

    // slot-id names the second one; the key lands there and only there.
    let uri = format!("pkcs11:token=twin;slot-id={};object=seal?{query}", slots[1]);
    keygen(&ws, &hsm, &uri).ok();
    assert!(private_keys_in_slot(&hsm, slots[1]).contains("seal"));
    assert!(!private_keys_in_slot(&hsm, slots[0]).contains("seal"));

    // A slot-id no token has, or a manufacturer the token does not have,
    // matches nothing: the other attributes alone never pick a token.
    for wrong in [
        format!(
            "pkcs11:token=twin;slot-id={};object=x?{query}",
            slots[0] + slots[1]
        ),
        format!(
            "pkcs11:token=twin;slot-id={};manufacturer=Other;object=x?{query}",
            slots[0]
        ),
        format!(
            "pkcs11:token=twin;slot-id={};model=HSM%209000;object=x?{query}",
            slots[0]
        ),
    ] {
        let run = keygen(&ws, &hsm, &wrong);
        assert_eq!(run.code, 1, "{wrong}: {}", run.stdout);
        assert!(run.stderr.contains("no token matches"), "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("slot-id={}", slots[0])),
            "the message lists the tokens present with their slots: {}",
            run.stderr
        );
    }

    // The token's real manufacturer and model match (trimmed of padding).
    let uri = format!(
        "pkcs11:token=twin;slot-id={};manufacturer=SoftHSM%20project;model=SoftHSM%20v2;object=other?{query}",
        slots[0]
    );
    keygen(&ws, &hsm, &uri).ok();
    assert!(private_keys_in_slot(&hsm, slots[0]).contains("other"));
}

#[test]
fn module_name_finds_softhsm2_through_its_p11_kit_registration() {
    let registration = std::path::Path::new("/usr/share/p11-kit/modules/softhsm2.module");
    assert!(
        registration.is_file(),
        "Debian's softhsm2 package registers its module with p11-kit at {}",
        registration.display()
    );
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["named"], "ALL");
    let uri = format!(
        "pkcs11:token=named;object=k?module-name=softhsm2&pin-source=file:{}",
        hsm.pin_file()
    );
    let run = Run::from(
        Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["hsm", "keygen", "--key", &uri, "--key-type", "p256"])
            .env("SOFTHSM2_CONF", hsm.conf())
            // The registration alone must find the module.
            .env_remove("CERTMINT_PKCS11_MODULE")
            .current_dir(ws.path("."))
            .output()
            .unwrap(),
    )
    .ok();
    assert!(run.stdout.contains("\"k\""), "{}", run.stdout);
    assert_eq!(
        hsm.objects("named").len(),
        2,
        "the key pair is on the token"
    );

    let unknown = ws.certmint_env(
        &[
            "hsm",
            "keygen",
            "--key",
            "pkcs11:token=named;object=k2?module-name=no-such-vendor",
            "--key-type",
            "p256",
        ],
        &[("SOFTHSM2_CONF", &hsm.conf())],
    );
    assert_eq!(
        unknown.code, 2,
        "a module name is an argument: a usage error"
    );
    assert!(
        unknown
            .stderr
            .contains("no p11-kit module is registered as")
            && unknown.stderr.contains("softhsm2"),
        "the message lists what is registered: {}",
        unknown.stderr
    );
}

/// `hsm list` shows what pkcs11-tool -L and -O show: each slot with its
/// token's URI values, and a token's objects with their flags — a key
/// certmint generated is sensitive and was never extractable.
#[test]
fn hsm_list_shows_slots_tokens_and_objects_with_their_flags() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["left", "right"], "ALL");
    let env = [("SOFTHSM2_CONF", hsm.conf())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let module = softhsm_module();

    let slots = ws
        .certmint_env(&["hsm", "list", "--module-path", &module, "--json"], &env)
        .ok();
    let slots: serde_json::Value = serde_json::from_str(&slots.stdout).unwrap();
    let listed: Vec<(u64, String)> = slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["token"]["initialized"] == true)
        .map(|s| {
            (
                s["slot_id"].as_u64().unwrap(),
                s["token"]["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected: Vec<(u64, String)> = ["left", "right"]
        .iter()
        .flat_map(|label| {
            slots_of(&hsm, label)
                .into_iter()
                .map(|s| (s, label.to_string()))
        })
        .collect();
    expected.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(
        listed_sorted, expected,
        "the same slots as pkcs11-tool sees"
    );

    keygen(&ws, &hsm, &hsm.uri("right", Some("seal"))).ok();
    let public = ws
        .certmint_env(&["hsm", "list", "--token", &hsm.uri("right", None)], &env)
        .ok();
    assert!(public.stdout.contains("public-key") && public.stdout.contains("\"seal\""));
    assert!(
        !public.stdout.contains("private-key"),
        "no private objects without logging in: {}",
        public.stdout
    );

    let all = ws
        .certmint_env(
            &[
                "hsm",
                "list",
                "--token",
                &hsm.uri("right", None),
                "--login",
                "--json",
            ],
            &env,
        )
        .ok();
    let all: serde_json::Value = serde_json::from_str(&all.stdout).unwrap();
    let private = all["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["class"] == "private-key")
        .expect("the private key is listed once logged in");
    assert_eq!(private["label"], "seal");
    assert_eq!(private["key_type"], "ec");
    let flags: Vec<&str> = private["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for flag in ["sign", "sensitive", "never-extractable"] {
        assert!(flags.contains(&flag), "{flag} in {flags:?}");
    }
    assert!(!flags.contains(&"extractable"), "{flags:?}");

    let other = ws
        .certmint_env(
            &["hsm", "list", "--token", &hsm.uri("left", None), "--login"],
            &env,
        )
        .ok();
    assert!(other.stdout.contains("no objects"), "{}", other.stdout);
}

/// `hsm probe` exits 0 when the token is ready and 10 when it is not, so a
/// script can gate an on-site session on the preflight.
#[test]
fn hsm_probe_exits_10_when_the_token_is_not_ready() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["gate"], "ALL");
    let env = [("SOFTHSM2_CONF", hsm.conf())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let probe = |label: &str| {
        ws.certmint_env(
            &[
                "hsm",
                "probe",
                "--token",
                &hsm.uri("gate", None),
                "--label",
                label,
            ],
            &env,
        )
    };
    let ready = probe("free-label").ok();
    assert!(ready.stdout.contains("Ready for provisioning."));
    keygen(&ws, &hsm, &hsm.uri("gate", Some("taken-label"))).ok();
    let not_ready = probe("taken-label");
    assert_eq!(not_ready.code, 10, "{}", not_ready.stderr);
    assert!(
        not_ready.stdout.contains("NOT ready"),
        "the report is printed"
    );
    assert!(
        not_ready.stderr.contains("is not ready"),
        "{}",
        not_ready.stderr
    );
}

/// `hsm probe --json` gives counts as numbers or `null`, never prose.
#[test]
fn hsm_probe_json_gives_numbers_or_null() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["counted"], "ALL");
    let env = [("SOFTHSM2_CONF", hsm.conf())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = ws
        .certmint_env(
            &[
                "hsm",
                "probe",
                "--token",
                &hsm.uri("counted", None),
                "--json",
            ],
            &env,
        )
        .ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let token = &report["token"];
    for field in ["sessions", "rw_sessions"] {
        let count = &token[field];
        assert!(count["open"].is_u64() || count["open"].is_null(), "{count}");
        assert!(count["max"].is_u64() || count["max"].is_null(), "{count}");
        assert!(count["unlimited"].is_boolean(), "{count}");
    }
    for field in ["public_memory", "private_memory"] {
        let memory = &token[field];
        assert!(
            memory["free"].is_u64() || memory["free"].is_null(),
            "{memory}"
        );
        assert!(
            memory["total"].is_u64() || memory["total"].is_null(),
            "{memory}"
        );
    }
    assert_eq!(report["ready"], true);
}

/// Without module-path, module-name or CERTMINT_PKCS11_MODULE, certmint
/// never loads a test module: it takes p11-kit's proxy when installed, and
/// otherwise says what to give (a usage error naming the registered modules).
#[test]
fn no_module_named_means_p11_kits_proxy_or_a_clear_refusal_never_softhsm2() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["unnamed"], "ALL");
    let run = Run::from(
        Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args([
                "-vv",
                "hsm",
                "probe",
                "--token",
                &format!("pkcs11:token=unnamed?pin-source=file:{}", hsm.pin_file()),
            ])
            .env("SOFTHSM2_CONF", hsm.conf())
            .env_remove("CERTMINT_PKCS11_MODULE")
            .current_dir(ws.path("."))
            .output()
            .unwrap(),
    );
    assert!(
        !run.stderr.contains("libsofthsm2.so"),
        "SoftHSM2 loaded as a default: {}",
        run.stderr
    );
    let proxy = format!(
        "/usr/lib/{}-linux-gnu/p11-kit-proxy.so",
        std::env::consts::ARCH
    );
    if std::path::Path::new(&proxy).is_file() {
        assert!(run.stderr.contains(&proxy), "{}", run.stderr);
    } else {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("no PKCS#11 module named") && run.stderr.contains("softhsm2"),
            "names what to give and what is registered: {}",
            run.stderr
        );
    }
}
