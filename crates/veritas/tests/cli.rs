//! The client subcommands (`topics`, `produce-raw`, `consume`) as a user runs them: the real
//! `veritas` binary against a real broker on an ephemeral port.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use veritas_broker::{Broker, BrokerConfig};

fn veritas(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veritas"));
    cmd.args(args)
        .args(["-b", bootstrap])
        .env("VERITAS_LOG", "warn");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("veritas runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "veritas {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("json output")
}

async fn broker(dir: &std::path::Path) -> Broker {
    let mut c = BrokerConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    Broker::start(c, &prometheus::Registry::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_produce_raw_and_consume_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let bs = b.bootstrap_servers();
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let bs = bs2.as_str();
        veritas(
            bs,
            &[
                "topics",
                "create",
                "payments",
                "--partitions",
                "3",
                "--config",
                "retention.ms=3600000",
            ],
            None,
        );
        let list = json(&veritas(bs, &["topics", "list", "-o", "json"], None));
        assert_eq!(list[0]["name"], "payments");
        assert_eq!(list[0]["partitions"], 3);

        veritas(
            bs,
            &["produce-raw", "payments", "-K:"],
            Some("card-1:{\"a\":1}\ncard-2:{\"a\":2}\ncard-1:{\"a\":3}\n"),
        );
        let out = veritas(
            bs,
            &[
                "consume",
                "payments",
                "--from-beginning",
                "-e",
                "-o",
                "json",
            ],
            None,
        );
        let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 3);
        // Same key, same partition, in order.
        let card1: Vec<_> = records.iter().filter(|r| r["key"] == "card-1").collect();
        assert_eq!(card1.len(), 2);
        assert_eq!(card1[0]["partition"], card1[1]["partition"]);
        assert_eq!(card1[0]["value"], "{\"a\":1}");
        assert_eq!(card1[1]["value"], "{\"a\":3}");

        veritas(
            bs,
            &[
                "topics",
                "alter-config",
                "payments",
                "--set",
                "segment.bytes=1048576",
                "--partitions",
                "4",
            ],
            None,
        );
        let d = json(&veritas(
            bs,
            &["topics", "describe", "payments", "-o", "json"],
            None,
        ));
        assert_eq!(d["partitions"].as_array().unwrap().len(), 4);
        let cfg = |name: &str| {
            d["configs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(cfg("segment.bytes")["value"], "1048576");
        assert_eq!(
            cfg("retention.ms")["value"],
            "3600000",
            "alter-config keeps other overrides"
        );
        let hw: i64 = d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["high_watermark"].as_i64().unwrap())
            .sum();
        assert_eq!(hw, 3);

        veritas(bs, &["topics", "delete", "payments"], None);
        let list = json(&veritas(bs, &["topics", "list", "-o", "json"], None));
        assert_eq!(list.as_array().unwrap().len(), 0);
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_list_describe_and_reset_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = BrokerConfig::new(dir.path());
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.groups.initial_rebalance_delay = std::time::Duration::from_millis(100);
    let b = Broker::start(c, &prometheus::Registry::new())
        .await
        .unwrap();
    let bs = b.bootstrap_servers();
    tokio::task::spawn_blocking(move || {
        let bs = bs.as_str();
        veritas(
            bs,
            &["topics", "create", "orders", "--partitions", "2"],
            None,
        );
        veritas(bs, &["produce-raw", "orders"], Some("a\nb\nc\nd\ne\n"));
        // A group member reads everything; its offsets are committed when it closes.
        let out = veritas(
            bs,
            &[
                "consume",
                "orders",
                "--group",
                "billing",
                "--from-beginning",
                "-n",
                "5",
            ],
            None,
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);

        let list = json(&veritas(bs, &["groups", "list", "-o", "json"], None));
        let billing = list
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "billing")
            .expect("group listed");
        assert_eq!(billing["state"], "Empty", "the member left");

        let d = json(&veritas(
            bs,
            &["groups", "describe", "billing", "-o", "json"],
            None,
        ));
        let committed: i64 = d["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["committed"].as_i64().unwrap())
            .sum();
        assert_eq!(committed, 5);
        assert_eq!(d["total_lag"], 0);

        let r = json(&veritas(
            bs,
            &[
                "groups",
                "reset-offsets",
                "billing",
                "--to-earliest",
                "-o",
                "json",
            ],
            None,
        ));
        assert!(r.as_array().unwrap().iter().all(|p| p["new"] == 0));
        let d = json(&veritas(
            bs,
            &["groups", "describe", "billing", "-o", "json"],
            None,
        ));
        assert_eq!(d["total_lag"], 5, "lag is back to the whole topic");
    })
    .await
    .unwrap();
    b.shutdown().await.unwrap();
}
