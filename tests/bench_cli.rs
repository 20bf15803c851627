//! `certmint bench` reports what it measured, for a software key, a token
//! key and a batch. Only the shape of the report is checked: performance
//! figures are never asserted in tests (see the README's Performance section).

mod common;

use common::{Hsm, Workspace};

fn number(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

#[test]
fn bench_reports_raw_rates_pipeline_efficiency_and_latency() {
    let ws = Workspace::new();
    let out = ws
        .certmint(&[
            "bench",
            "--key-type",
            "p256",
            "--seconds",
            "0.2",
            "--workers",
            "2",
            "--json",
            "--batch",
            "40",
        ])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for run in ["single", "parallel"] {
        let r = &json["pipeline"][run];
        assert!(number(&r["raw_sign"]["per_second"]) > 0.0, "{r}");
        assert!(number(&r["raw_verify"]["per_second"]) > 0.0, "{r}");
        assert!(number(&r["sign_then_verify"]["per_second"]) > 0.0, "{r}");
        assert!(number(&r["issuance"]["operations"]) > 0.0, "{r}");
        assert!(number(&r["p99_us"]) >= number(&r["p50_us"]), "{r}");
        let bound = 1.0
            / (1.0 / number(&r["raw_sign"]["per_second"])
                + 1.0 / number(&r["raw_verify"]["per_second"]));
        assert!((number(&r["separate_sign_verify_bound"]) - bound).abs() < 1e-6 * bound.max(1.0));
        // The efficiencies are medians over the rounds of ratios within a
        // round.
        let rounds = |rate: &str| -> Vec<f64> {
            r["per_round"][rate]
                .as_array()
                .unwrap_or_else(|| panic!("no per_round {rate}: {r}"))
                .iter()
                .map(number)
                .collect()
        };
        let (signs, verifies, sign_verifies, issues) = (
            rounds("raw_sign"),
            rounds("raw_verify"),
            rounds("sign_then_verify"),
            rounds("issuance"),
        );
        assert!(!issues.is_empty(), "{r}");
        assert_eq!(
            [signs.len(), verifies.len(), sign_verifies.len()],
            [issues.len(); 3]
        );
        let efficiency = median(
            issues
                .iter()
                .zip(&sign_verifies)
                .map(|(i, sv)| i / sv)
                .collect(),
        );
        assert!((number(&r["efficiency"]) - efficiency).abs() < 1e-9, "{r}");
        let versus_separate = median(
            (0..issues.len())
                .map(|k| issues[k] * (1.0 / signs[k] + 1.0 / verifies[k]))
                .collect(),
        );
        assert!(
            (number(&r["efficiency_vs_separate_rates"]) - versus_separate).abs() < 1e-9,
            "{r}"
        );
    }
    assert_eq!(json["pipeline"]["parallel"]["workers"], 2);
    // A software key signs on its caller's thread: one thread per worker.
    assert_eq!(json["pipeline"]["single"]["threads"], 1);
    assert_eq!(json["pipeline"]["parallel"]["threads"], 2);
    let pipeline = &json["pipeline"];
    let scaling = &pipeline["scaling"];
    assert_eq!(scaling["workers"], 2);
    // Each ratio is the parallel run's rate ÷ the single run's.
    for rate in ["raw_sign", "raw_verify", "sign_then_verify", "issuance"] {
        let expected = number(&pipeline["parallel"][rate]["per_second"])
            / number(&pipeline["single"][rate]["per_second"]);
        assert!(
            (number(&scaling[rate]) - expected).abs() < 1e-9 * expected.max(1.0),
            "{rate}: {scaling}"
        );
    }
    assert_eq!(json["batch"]["devices"], 40);
    assert!(number(&json["batch"]["peak_rss_kib"]) > 0.0);
}

#[test]
fn bench_measures_a_key_in_a_token() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["bench"], "ALL");
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let key = hsm.uri("bench", Some("k"));
    ws.certmint_env(
        &["hsm", "keygen", "--key", &key, "--key-type", "p256"],
        &env,
    )
    .ok();
    let out = ws
        .certmint_env(
            &["bench", "--key", &key, "--seconds", "0.2", "--workers", "2"],
            &env,
        )
        .ok();
    assert!(
        out.stdout.contains("(p256, ecdsa-with-SHA256)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("efficiency"), "{}", out.stdout);
    // Workers and threads, the first two columns: one worker signs in this
    // process; two sign in a session process each, each called by two
    // threads so that one chunk is signed while another is verified.
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("workers   threads"))
        .skip(1)
        .take(2)
        .map(|line| line.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(rows, [["1", "1"], ["2", "4"]], "{}", out.stdout);
    assert!(
        out.stdout.contains("2 workers ÷ 1: sign ×"),
        "{}",
        out.stdout
    );
}

#[test]
fn bench_sign_only_reports_the_raw_signature_rate_alone() {
    let ws = Workspace::new();
    let out = ws
        .certmint(&[
            "bench",
            "--key-type",
            "rsa2048",
            "--sign-only",
            "--seconds",
            "0.2",
            "--json",
        ])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["key"], "generated rsa2048");
    let rate = &json["raw_sign"];
    // Whole chunks of 32 distinct messages, for at least the time asked.
    let signed = number(&rate["operations"]);
    assert!(signed >= 32.0 && signed % 32.0 == 0.0, "{rate}");
    assert!(number(&rate["seconds"]) >= 0.2, "{rate}");
    let per_second = signed / number(&rate["seconds"]);
    assert!((number(&rate["per_second"]) - per_second).abs() < 1e-6 * per_second);
    // It measures one thread: workers are refused, not ignored.
    let refused = ws.certmint(&["bench", "--sign-only", "--workers", "2"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--workers"), "{}", refused.stderr);
}
