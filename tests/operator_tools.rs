//! What operators and their scripts rely on beyond the main tasks: serial
//! lists as spreadsheets write them.

mod common;

use common::{ensure_manufacturer, import_args, run_on_journal, Run, Workspace};

/// RFC 4180 CSV as a spreadsheet exports it: every field quoted, a comma
/// inside a quoted field, a quote written twice. Each row keeps its line.
#[test]
fn order_import_reads_quoted_csv_fields_with_separators_inside() {
    let ws = Workspace::with_ca(&[]);
    ensure_manufacturer(|args| run_on_journal(&ws, args, &[]));
    ws.write(
        "list.csv",
        b"\"No\",\"Seri No\",\"Model\"\n\
          \"1\",\"JI12345671\",\"YK, 100\"\n\
          \"2\",\"JI12345672\",\"the \"\"Y\"\" model, v2\"\n\
          \"3\",\"JI1234567X\",\"bad serial\"\n\
          \"4\",\"JI12345674\",\"unclosed\n",
    );
    let refused = run_on_journal(&ws, &import_args("JI", "list.csv", &[]), &[]);
    assert_eq!(refused.code, 3, "a list with problems is refused whole");
    assert!(
        refused.stderr.contains("line 4") && refused.stderr.contains("JI1234567X"),
        "the bad serial is named with its line: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("line 5") && refused.stderr.contains("does not close"),
        "the unclosed quote is named with its line: {}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("fields"),
        "no row is miscounted: {}",
        refused.stderr
    );

    let accepted = run_on_journal(
        &ws,
        &import_args("JI", "list.csv", &["--accept-good-lines", "--json"]),
        &[],
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&accepted.stdout).unwrap();
    assert_eq!(report["accepted"], 2, "{}", accepted.stdout);
    assert_eq!(report["problem_count"], 2, "{}", accepted.stdout);
}

/// `certmint inspect --json cert.pem | head -1`: the reader closes the pipe
/// before certmint writes; certmint ends quietly with the status of a
/// process ended by SIGPIPE (141), as `cat` does, and never panics.
#[test]
fn a_closed_standard_output_ends_the_program_quietly() {
    use std::process::{Command, Stdio};
    let ws = Workspace::with_ca(&[]);
    // More output than a pipe holds (64 KiB), so that the write fails even
    // when a process another test forks holds the read end for a moment.
    let chain = ws.read("ca/issuing.pem").repeat(100);
    ws.write("long-chain.pem", &chain);
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["inspect", "--json", "long-chain.pem"])
            .current_dir(ws.path("."))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the child, still starting, writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(141), "{stderr}");
        assert!(stderr.is_empty(), "nothing said: {stderr}");
    }
}

/// `inspect` reads what certmint writes and users hand it: every
/// certificate of a chain, a request (its signature checked), and a
/// delivered PKCS#12 file opened with its password from a file or a
/// variable — never showing the key.
#[test]
fn inspect_reads_a_chain_a_request_and_a_delivered_pkcs12_file() {
    let ws = Workspace::with_ca(&[]);
    let mut chain = ws.read("ca/issuing.pem");
    chain.extend(ws.read("ca/root.pem"));
    ws.write("chain.pem", &chain);
    let text = ws.certmint(&["inspect", "chain.pem"]).ok().stdout;
    assert!(text.contains("Certificate 1 of 2") && text.contains("Certificate 2 of 2"));
    let json = ws.certmint(&["inspect", "--json", "chain.pem"]).ok().stdout;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["schema"], "certmint.inspect/1");
    assert_eq!(json["kind"], "chain");
    let serials: Vec<&str> = json["certificates"]
        .as_array()
        .expect("a chain holds its certificates")
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    let openssl_serial = |file: &str| {
        ws.openssl(&["x509", "-in", file, "-noout", "-serial"])
            .ok()
            .stdout
            .trim()
            .trim_start_matches("serial=")
            .to_owned()
    };
    assert_eq!(
        serials,
        [
            openssl_serial("ca/issuing.pem"),
            openssl_serial("ca/root.pem")
        ]
    );

    ws.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        "k.pem",
        "-subj",
        "/CN=Request Test",
        "-out",
        "r.csr",
    ])
    .ok();
    let request = ws.certmint(&["inspect", "--json", "r.csr"]).ok().stdout;
    let request: serde_json::Value = serde_json::from_str(&request).unwrap();
    assert_eq!(request["kind"], "certificate-request");
    assert_eq!(request["public_key"], "p384");
    assert_eq!(request["subject"][0]["value"], "Request Test");
    // A request whose signature does not verify is refused.
    let mut forged = ws.read("r.csr");
    let at = forged.len() - 40;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    ws.write("forged.csr", &forged);
    assert_eq!(ws.certmint(&["inspect", "forged.csr"]).code, 3);

    // A delivered soft order: each PKCS#12 file with its password.
    ws.write("list.txt", b"FU00022547\n");
    let run = |args: &[&str]| run_on_journal(&ws, args, &[]);
    common::import_and_pay(run, "FU", "list.txt", "1", &[]);
    run(&common::produce_args("1", &[])).ok();
    let passwords = String::from_utf8(ws.read("out/order-1.passwords.csv")).unwrap();
    let row: Vec<&str> = passwords.lines().nth(1).unwrap().split(',').collect();
    let (p12, password) = (format!("out/order-1/{}", row[1]), row[2]);
    let refused = ws.certmint(&["inspect", &p12]);
    assert_eq!(
        refused.code, 2,
        "a PKCS#12 file without its password: usage"
    );
    assert!(
        refused.stderr.contains("--password-file"),
        "{}",
        refused.stderr
    );
    ws.write("pw.txt", format!("{password}\n").as_bytes());
    let shown = ws
        .certmint(&["inspect", "--json", "--password-file", "pw.txt", &p12])
        .ok()
        .stdout;
    assert!(!shown.contains("PRIVATE KEY") && !shown.contains(password));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["kind"], "pkcs12");
    let certificates = shown["entries"][0]["certificates"].as_array().unwrap();
    assert_eq!(
        certificates.len(),
        3,
        "the device certificate and its chain"
    );
    let delivered = openssl_serial(&format!("out/order-1/certs/{}.pem", row[0]));
    assert_eq!(certificates[0]["serial"].as_str().unwrap(), delivered);
    let by_env = Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["inspect", "--password-env", "P12_PASSWORD", &p12])
            .env("P12_PASSWORD", password)
            .current_dir(ws.path("."))
            .output()
            .unwrap(),
    )
    .ok();
    assert!(by_env.stdout.contains("PKCS#12 file (MAC verified)"));
    ws.write("wrong.txt", b"not-the-password\n");
    let wrong = ws.certmint(&["inspect", "--password-file", "wrong.txt", &p12]);
    assert_eq!(wrong.code, 3);
    assert!(
        wrong.stderr.contains("password does not open"),
        "{}",
        wrong.stderr
    );
}

/// Completions and manual pages come from the CLI definition itself, so
/// they name every command there is.
#[test]
fn completions_and_manual_pages_cover_every_command() {
    let ws = Workspace::new();
    let bash = ws.certmint(&["completions", "bash"]).ok().stdout;
    std::fs::write(ws.path("certmint.bash"), &bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .args(["-n", "certmint.bash"])
        .current_dir(ws.path("."))
        .status()
        .unwrap();
    assert!(syntax.success(), "bash reads the completion script");
    for word in ["produce", "purge", "provision", "--order", "--journal"] {
        assert!(bash.contains(word), "{word} is completed");
    }
    for shell in ["zsh", "fish"] {
        let script = ws.certmint(&["completions", shell]).ok().stdout;
        assert!(script.contains("produce"), "{shell}");
    }
    assert_eq!(ws.certmint(&["completions", "tcsh"]).code, 2);

    let written = ws.certmint(&["man", "--out-dir", "man1"]).ok().stdout;
    assert!(written.contains("manual pages"), "{written}");
    let page = String::from_utf8(ws.read("man1/certmint-okc-produce.1")).unwrap();
    assert!(page.contains(".TH certmint-okc-produce 1"), "{page}");
    assert!(
        page.contains("certmint okc produce"),
        "the synopsis names the command"
    );
    for name in [
        "certmint.1",
        "certmint-order-import.1",
        "certmint-hsm-list.1",
    ] {
        assert!(ws.exists(&format!("man1/{name}")), "{name}");
    }
    assert!(
        !ws.exists("man1/certmint-pkcs11-session.1"),
        "internal commands have no page"
    );
}

/// The log goes to standard error at the level -v/-q or RUST_LOG asks for,
/// and never holds a PIN, even at the most detailed level.
#[test]
fn the_log_follows_v_q_and_rust_log_and_never_shows_a_pin() {
    use common::Hsm;
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["logged"], "ALL");
    let pin = hsm.pin();
    let keygen = |flags: &[&str], env: &[(&str, &str)], object: &str| {
        let key = format!(
            "pkcs11:token=logged;object={object}?module-path={}",
            common::softhsm_module()
        );
        let mut args: Vec<&str> = flags.to_vec();
        args.extend([
            "hsm",
            "keygen",
            "--key",
            &key,
            "--key-type",
            "p256",
            "--token-pin-env",
            "TOKEN_PIN",
        ]);
        let mut all = vec![("SOFTHSM2_CONF", hsm.conf()), ("TOKEN_PIN", pin.clone())];
        all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ws.certmint_env(&args, &all).ok()
    };

    let quiet = keygen(&[], &[], "k0");
    assert!(
        !quiet.stderr.contains("INFO"),
        "nothing below a warning by default: {}",
        quiet.stderr
    );
    let verbose = keygen(&["-v"], &[], "k1");
    assert!(
        verbose.stderr.contains("INFO") && verbose.stderr.contains("logged in"),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains("DEBUG"), "{}", verbose.stderr);
    let detailed = keygen(&["-vv"], &[], "k2");
    assert!(detailed.stderr.contains("DEBUG"), "{}", detailed.stderr);
    let chosen = keygen(&[], &[("RUST_LOG", "certmint::pkcs11=debug")], "k3");
    assert!(
        chosen.stderr.contains("DEBUG"),
        "RUST_LOG wins: {}",
        chosen.stderr
    );
    let everything = keygen(&["-vvv"], &[], "k4");
    assert!(
        everything.stderr.lines().count() >= 4,
        "{}",
        everything.stderr
    );
    for run in [&quiet, &verbose, &detailed, &chosen, &everything] {
        assert!(
            !run.stderr.contains(&pin),
            "a PIN in the log: {}",
            run.stderr
        );
    }
    let q = ws.certmint(&["-q", "-v", "order", "list"]);
    assert_eq!(q.code, 2, "-q and -v together are a usage error");
}

/// Every command's help, found by walking the "Commands:" lists from the top.
fn every_help(ws: &Workspace) -> Vec<(String, String)> {
    let mut helps = Vec::new();
    let mut pending = vec![Vec::<String>::new()];
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = ws.certmint(&args).ok().stdout;
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
            } else if in_commands && line.starts_with("  ") && !line.starts_with("   ") {
                let name = line.split_whitespace().next().unwrap_or_default();
                if name != "help" {
                    let mut sub = path.clone();
                    sub.push(name.to_owned());
                    pending.push(sub);
                }
            } else if in_commands && !line.starts_with(' ') {
                in_commands = false;
            }
        }
        helps.push((path.join(" "), help));
    }
    helps
}

/// Help texts say whole sentences, and tables line up.
#[test]
fn help_texts_are_whole_and_order_list_columns_line_up() {
    let ws = Workspace::with_ca(&[]);
    ensure_manufacturer(|args| run_on_journal(&ws, args, &[]));
    let helps = every_help(&ws);
    assert!(
        helps.len() > 25,
        "every command has its help: {}",
        helps.len()
    );
    for (command, help) in &helps {
        // clap reads `{n}` as a line break: a label written so is cut.
        assert!(
            !help.lines().any(|l| l.trim_end().ends_with("SIGN")),
            "`{command} --help` breaks a seal label:\n{help}"
        );
    }
    let import = ws.certmint(&["order", "import", "--help"]).ok().stdout;
    assert!(
        import.contains("{VKN}SIGN0, {VKN}SIGN1, …"),
        "the seal labels are shown, not broken by a line: {import}"
    );
    let provision = ws.certmint(&["hsm", "provision", "--help"]).ok().stdout;
    assert!(
        provision.contains("the order's key type is used"),
        "the --key-type text is whole: {provision}"
    );

    ws.write("list.txt", b"FU00022547\nFU00022548\n");
    run_on_journal(&ws, &import_args("FU", "list.txt", &[]), &[]).ok();
    run_on_journal(
        &ws,
        &[
            "order",
            "import",
            "--kind",
            "mali-muhur",
            "--vkn",
            "4540536920",
            "--unvan",
            "Örnek Bilişim A.Ş.",
            "--target",
            "card",
            "--seals",
            "1",
        ],
        &[],
    )
    .ok();
    run_on_journal(&ws, &["order", "pay", "--order", "1"], &[]).ok();
    let table = run_on_journal(&ws, &["order", "list"], &[]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    // Each column starts where its heading starts.
    for heading in ["state", "target", "verified"] {
        let column = lines[0].find(heading).unwrap();
        for row in &lines[1..] {
            let cell = &row[column..];
            assert!(
                !cell.starts_with(' ') || heading == "verified",
                "{heading} column misaligned:\n{table}"
            );
        }
    }
    assert!(lines[1].starts_with("    1  paid       soft"), "{table}");
    assert!(lines[2].starts_with("    2  received   card"), "{table}");
}

/// A malformed --now is named once, as a usage error.
#[test]
fn a_malformed_time_argument_is_named_once() {
    let ws = Workspace::new();
    let run = run_on_journal(
        &ws,
        &["okc", "purge", "--dry-run", "--now", "2026-13-01"],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("could not be parsed").count(),
        1,
        "{}",
        run.stderr
    );
}

/// With --json, an error is one JSON object on standard error naming its
/// kind and exit code; `order pay --json` reports the order, its payment an
/// object, its times RFC 3339 UTC to the second.
#[test]
fn json_errors_and_order_pay_json() {
    let ws = Workspace::with_ca(&[]);
    ensure_manufacturer(|args| run_on_journal(&ws, args, &[]));
    ws.write("list.txt", b"FU00022547\n");
    run_on_journal(&ws, &import_args("FU", "list.txt", &[]), &[]).ok();

    let missing = run_on_journal(&ws, &["order", "pay", "--order", "9", "--json"], &[]);
    assert_eq!(missing.code, 8);
    assert!(
        missing
            .stderr
            .starts_with("{\"schema\":\"certmint.error/1\""),
        "the schema comes first: {}",
        missing.stderr
    );
    let error: serde_json::Value = serde_json::from_str(missing.stderr.trim()).unwrap();
    assert_eq!(error["schema"], "certmint.error/1");
    assert_eq!(error["error"]["kind"], "not-found");
    assert_eq!(error["error"]["exit_code"], 8);
    assert!(error["error"]["message"].as_str().unwrap().contains("9"));

    let usage = run_on_journal(&ws, &["order", "pay", "--orderx", "1", "--json"], &[]);
    assert_eq!(usage.code, 2);
    let error: serde_json::Value = serde_json::from_str(usage.stderr.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "usage");

    let plain = run_on_journal(&ws, &["order", "pay", "--order", "9"], &[]);
    assert!(plain.stderr.starts_with("error: "), "{}", plain.stderr);

    let paid = run_on_journal(&ws, &["order", "pay", "--order", "1", "--json"], &[]).ok();
    let order: serde_json::Value = serde_json::from_str(&paid.stdout).unwrap();
    assert_eq!(order["state"], "paid");
    assert_eq!(order["paid"]["by"], "test-operator");
    let at = order["paid"]["at"].as_str().unwrap();
    let created = order["created_at"].as_str().unwrap();
    for time in [at, created] {
        assert_eq!(time.len(), "2026-12-05T21:45:13Z".len(), "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }
}

/// `issue --not-before` may backdate by at most an hour: a certificate
/// that expired long ago, dated before its CA existed, is refused before
/// the CA key is opened; a start within the hour is kept.
#[test]
fn issue_refuses_a_start_long_past_or_before_the_ca() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("device", "p256");
    let issue = |start: &str, out: &str| {
        run_on_journal(
            &ws,
            &[
                "issue",
                "--ca",
                "ca",
                "--profile",
                "okc-device",
                "--public-key",
                "device.pub",
                "--device-serial",
                "FU00022547",
                "--not-before",
                start,
                "--out",
                out,
                "--reissue",
            ],
            &[],
        )
    };
    let ancient = issue("2001-01-01T00:00:00Z", "ancient.pem");
    assert_eq!(ancient.code, 2, "{}", ancient.stderr);
    assert!(
        ancient.stderr.contains("2001-01-01T00:00:00Z") && ancient.stderr.contains("60 minutes"),
        "{}",
        ancient.stderr
    );
    assert!(!ws.exists("ancient.pem"));
    // Within the hour, but before the CA existed (it was made moments ago):
    // the lint refuses it.
    let five_minutes_ago = (std::time::SystemTime::now() - std::time::Duration::from_secs(300))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let start = der::DateTime::from_unix_duration(std::time::Duration::from_secs(
        five_minutes_ago.as_secs(),
    ))
    .unwrap()
    .to_string();
    let before_ca = issue(&start, "early.pem");
    assert_eq!(before_ca.code, 4, "{}", before_ca.stderr);
    assert!(
        before_ca.stderr.contains("did not exist yet"),
        "{}",
        before_ca.stderr
    );
    assert!(!ws.exists("early.pem"));
}

/// The audit log names a real operator: with no --operator, no
/// CERTMINT_OPERATOR and no USER a recording command is refused. Reading
/// commands take no --operator, and never make a journal where none is.
#[test]
fn an_unnamed_operator_is_refused_and_reading_commands_make_no_journal() {
    let ws = Workspace::new();
    let unnamed = Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args([
                "manufacturer",
                "register",
                "--vkn",
                "4540536920",
                "--name",
                "Örnek Yazarkasa A.Ş.",
                "--prefixes",
                "FU",
                "--model-approval",
                "GIB-2026-001",
            ])
            .env_remove("USER")
            .env_remove("CERTMINT_OPERATOR")
            .current_dir(ws.path("."))
            .output()
            .unwrap(),
    );
    assert_eq!(unnamed.code, 2, "{}", unnamed.stderr);
    assert!(unnamed.stderr.contains("--operator"), "{}", unnamed.stderr);
    assert!(
        !ws.exists("certmint-journal.sqlite") || {
            // Opened, but nothing recorded: no manufacturer.
            let list = ws.certmint(&["manufacturer", "list", "--json"]).ok().stdout;
            serde_json::from_str::<serde_json::Value>(&list).unwrap()["manufacturers"]
                == serde_json::json!([])
        }
    );

    for read in [
        vec!["order", "list"],
        vec!["order", "status", "--order", "1"],
        vec!["audit", "verify"],
        vec!["cert", "list"],
    ] {
        let mut args = read.clone();
        args.extend(["--journal", "elsewhere.sqlite"]);
        let run = ws.certmint(&args);
        assert_eq!(run.code, 8, "{read:?}: {}", run.stderr);
        assert!(run.stderr.contains("no journal at"), "{}", run.stderr);
        assert!(!ws.exists("elsewhere.sqlite"), "{read:?} made a journal");
        let mut with_operator = read.clone();
        with_operator.extend(["--operator", "someone"]);
        assert_eq!(
            ws.certmint(&with_operator).code,
            2,
            "{read:?} takes no --operator"
        );
    }
}

/// Every --json document names its schema and version first, lists
/// included; JSON lines name it on every line.
#[test]
fn every_json_document_names_its_schema() {
    let ws = Workspace::with_ca(&[]);
    ws.write("list.txt", b"FU00022547\n");
    let run = |args: &[&str]| run_on_journal(&ws, args, &[]);
    common::import_and_pay(run, "FU", "list.txt", "1", &[]);
    run(&common::produce_args("1", &["--json"])).ok();
    let documents: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["order", "status", "--order", "1", "--json"],
            "certmint.order/1",
        ),
        (vec!["order", "list", "--json"], "certmint.order.list/1"),
        (vec!["audit", "verify", "--json"], "certmint.audit.verify/1"),
        (
            vec!["manufacturer", "list", "--json"],
            "certmint.manufacturer.list/1",
        ),
        (
            vec!["inspect", "--json", "ca/root.pem"],
            "certmint.inspect/1",
        ),
    ];
    for (args, schema) in documents {
        let out = run(&args).ok().stdout;
        let document: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(document["schema"], schema, "{args:?}");
        assert!(
            out.trim_start()
                .starts_with(&format!("{{\n  \"schema\": \"{schema}\"")),
            "the schema comes first: {out}"
        );
    }
    for (args, schema) in [
        (vec!["cert", "list", "--json"], "certmint.cert/1"),
        (vec!["audit", "show", "--json"], "certmint.audit.record/1"),
    ] {
        let out = run(&args).ok().stdout;
        assert!(out.lines().count() >= 1, "{args:?}");
        for line in out.lines() {
            let document: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(document["schema"], schema, "{line}");
        }
    }
}

/// `issue` never certifies a device of an unpaid order (it would bypass
/// payment and block the order's cancellation); the order can still be
/// cancelled.
#[test]
fn issue_refuses_a_device_of_an_unpaid_order() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("device", "p256");
    ws.write("list.txt", b"FU10000001\nFU10000002\n");
    let run = |args: &[&str]| run_on_journal(&ws, args, &[]);
    common::ensure_manufacturer(run);
    run(&import_args("FU", "list.txt", &[])).ok();
    let refused = run(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        "device.pub",
        "--device-serial",
        "FU10000001",
        "--out",
        "d.pem",
    ]);
    assert_eq!(refused.code, 9, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("before payment"),
        "{}",
        refused.stderr
    );
    assert!(!ws.exists("d.pem"));
    run(&["order", "cancel", "--order", "1"]).ok();
}

/// What the review of this tool found, pinned: a malformed time bound of
/// `audit show` is a usage error, and a file that starts like PEM but holds
/// no whole block is not an (empty) chain.
#[test]
fn a_bad_time_bound_is_usage_and_a_pem_without_a_block_is_refused() {
    let ws = Workspace::with_ca(&[]);
    ws.write("list.txt", b"FU00022547\n");
    let run = |args: &[&str]| run_on_journal(&ws, args, &[]);
    common::import_and_pay(run, "FU", "list.txt", "1", &[]);
    let bad = run(&["audit", "show", "--since", "garbage"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    ws.write("cut.pem", b"-----BEGINX");
    let cut = ws.certmint(&["inspect", "cut.pem"]);
    assert_eq!(cut.code, 3, "{}", cut.stderr);
    assert!(cut.stderr.contains("no whole PEM block"), "{}", cut.stderr);
}
