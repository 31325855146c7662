//! The query fuzz target on stable Rust: the same body as `fuzz/fuzz_targets/query.rs`
//! (`secgroupd::fuzzing::query_input`: decode_form, parse_action, State::plan; no panic,
//! every error with a message), driven by a seeded xorshift mutator over the seed corpus
//! for a fixed time (`SECGROUPD_FUZZ_SECS`, default 10 s), plus proptest properties that
//! no input, arbitrary or near-valid, panics the parser.
//!
//! With nightly and cargo-fuzz, `cargo fuzz run query` explores with coverage feedback.

use proptest::prelude::*;
use secgroupd::fuzzing::{SEEDS, query_input};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments that steer mutations towards the parser's interesting corners.
const TOKENS: &[&[u8]] = &[
    b"&",
    b"=",
    b"%",
    b"%ff",
    b"%c3%28",
    b"%00",
    b"+",
    b".1",
    b".0",
    b".01",
    b".2",
    b"GroupName",
    b"IpProtocol",
    b"FromPort",
    b"ToPort",
    b"CidrIp",
    b"-1",
    b"65536",
    b"99999999999999999999",
    b"/33",
    b"::/0",
    b"icmp",
    b"icmpv6",
    b"tcp",
    b"Action=",
    b"SourceSecurityGroupName=web",
    b"OwnerId=",
    b"IpAddress.1=",
    b"InstanceId=",
    b" ",
    b"\xff",
    b"\xe2\x9c\x93",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let end = (at + rng.below(8)).min(input.len());
                input.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, t.iter().copied());
            }
            3 => input.insert(at, rng.next() as u8),
            4 if !input.is_empty() => {
                // Duplicate a slice (repeated parameters, long values).
                let start = rng.below(input.len());
                let end = (start + rng.below(32)).min(input.len());
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            _ => {
                let other = SEEDS[rng.below(SEEDS.len())].as_bytes();
                input.push(b'&');
                input.extend_from_slice(other);
            }
        }
    }
    input.truncate(8192);
}

#[test]
fn seeded_mutations_never_panic() {
    let secs = std::env::var("SECGROUPD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed = std::env::var("SECGROUPD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5ec_9e0d);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut input = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
            mutate(&mut rng, &mut input);
            let result = std::panic::catch_unwind(|| query_input(&input));
            if let Err(e) = result {
                panic!(
                    "query_input panicked on {:?} (seed {seed}): {e:?}",
                    String::from_utf8_lossy(&input)
                );
            }
            runs += 1;
        }
    }
    eprintln!("{runs} mutated inputs in {secs} s, no panic");
    assert!(runs > 1000, "only {runs} inputs ran");
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Action".to_string()),
        Just("GroupName".to_string()),
        Just("GroupName.1".to_string()),
        Just("GroupName.2".to_string()),
        Just("IpProtocol".to_string()),
        Just("FromPort".to_string()),
        Just("ToPort".to_string()),
        Just("CidrIp".to_string()),
        Just("SourceSecurityGroupName".to_string()),
        Just("SourceSecurityGroupOwnerId".to_string()),
        Just("InstanceId".to_string()),
        Just("Interface".to_string()),
        Just("IpAddress.1".to_string()),
        Just("OwnerId".to_string()),
        "[A-Za-z.0-9]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("AuthorizeSecurityGroupIngress".to_string()),
        Just("RevokeSecurityGroupIngress".to_string()),
        Just("RegisterInstance".to_string()),
        Just("DescribeSecurityGroups".to_string()),
        Just("web".to_string()),
        Just("tcp".to_string()),
        Just("icmp".to_string()),
        Just("-1".to_string()),
        Just("0.0.0.0/0".to_string()),
        Just("::/0".to_string()),
        Just("000000000000".to_string()),
        "-?[0-9]{1,22}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,3}",
        "\\PC{0,20}",
    ]
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        query_input(&bytes);
    }

    #[test]
    fn near_valid_parameters_never_panic(
        params in proptest::collection::vec((name(), value()), 0..10)
    ) {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query_input(q.join("&").as_bytes());
    }
}
