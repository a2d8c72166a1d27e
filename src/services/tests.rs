use super::*;

fn svc(timeout: u32, volume_mb: u32, rate: Option<&str>) -> Service {
    Service {
        name: "turbo".into(),
        timeout,
        volume_mb,
        rate_limit: rate.map(str::to_string),
        nas_service: None,
        description: None,
    }
}

#[test]
fn thresholds_wrap_modulo_2_24_as_the_seed_says() {
    let table: &[(&str, u32)] = &[
        ("0", 0),
        ("1", 1),
        ("16777215", 16_777_215),
        ("16777216", 0),
        ("16777217", 1),
        ("16777218", 2),
        ("33554433", 1),
        ("0016777218", 2),
        // Beyond u64: still the exact residue.
        (
            "36893488147419103232",
            (36_893_488_147_419_103_232u128 % (1 << 24)) as u32,
        ),
    ];
    for (input, want) in table {
        assert_eq!(
            parse_threshold("--timeout", input).unwrap(),
            *want,
            "{input}"
        );
    }
    for v in [0u64, 1, 16_777_215, 16_777_216, u64::MAX] {
        assert_eq!(u64::from(wrap24(v)), v % 16_777_216);
    }
    for bad in ["", "-1", "1.5", "10s", " "] {
        let e = parse_threshold("--timeout", bad).unwrap_err();
        assert!(e.contains("--timeout"), "{e}");
    }
}

#[test]
fn names_are_checked() {
    for ok in ["turbo", "iptv-hd", "night_1", "svc.a"] {
        validate_name(ok).unwrap();
    }
    for bad in ["", "a b", "x\"y", "é", &"a".repeat(65)] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn families_from_the_nas_type() {
    let table = [
        (None, NasFamily::Mikrotik),
        (Some("mikrotik"), NasFamily::Mikrotik),
        (Some("Juniper"), NasFamily::Juniper),
        (Some("erx"), NasFamily::Juniper),
        (Some("cisco"), NasFamily::Cisco),
        (Some("isg"), NasFamily::Cisco),
        (Some("chillispot"), NasFamily::Other),
    ];
    for (t, want) in table {
        assert_eq!(NasFamily::of(t), want, "{t:?}");
    }
    assert!(NasFamily::Juniper.enforces_thresholds());
    assert!(!NasFamily::Cisco.enforces_thresholds());
    assert!(!NasFamily::Mikrotik.enforces_thresholds());
}

#[test]
fn accept_attributes_per_family() {
    let turbo = svc(60, 100, Some("10M/10M"));
    let mut iptv = svc(0, 0, None);
    iptv.name = "iptv".into();
    iptv.nas_service = Some("iptv(hd)".into());
    let both = [&turbo, &iptv];
    let j = accept_attributes(NasFamily::Juniper, &both);
    let j: Vec<(&str, &str, &str)> = j
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
        .collect();
    assert_eq!(
        j,
        [
            ("ERX-Service-Activate:1", "turbo", "+="),
            ("ERX-Service-Timeout:1", "60", "+="),
            ("ERX-Service-Volume:1", "100", "+="),
            ("ERX-Service-Activate:2", "iptv(hd)", "+="),
        ]
    );
    let c = accept_attributes(NasFamily::Cisco, &both);
    assert_eq!(c[0].1, "Aturbo");
    assert_eq!(c[1].1, "Aiptv(hd)");
    let m = accept_attributes(NasFamily::Mikrotik, &both);
    assert_eq!(
        m,
        [(
            "Mikrotik-Rate-Limit".to_string(),
            "10M/10M".to_string(),
            ":="
        )]
    );
    assert!(accept_attributes(NasFamily::Mikrotik, &[&iptv]).is_empty());
    assert!(accept_attributes(NasFamily::Other, &both).is_empty());
    let many: Vec<Service> = (0..40).map(|_| svc(0, 0, None)).collect();
    let refs: Vec<&Service> = many.iter().collect();
    assert_eq!(accept_attributes(NasFamily::Juniper, &refs).len(), MAX_TAGS);
}

fn vsa_of(a: &Attribute) -> (u32, u8, Vec<u8>) {
    let (vendor, subs) = a.as_vsa().expect("a VSA");
    (vendor, subs[0].vendor_type, subs[0].value.to_vec())
}

#[test]
fn coa_bytes_per_family() {
    let s = svc(16_777_215, 2, Some("10M/10M"));
    let on = coa_change(NasFamily::Juniper, &s, true, None).unwrap();
    assert_eq!(vsa_of(&on[0]), (4874, 65, b"\x01turbo".to_vec()));
    assert_eq!(vsa_of(&on[1]), (4874, 68, vec![1, 0xFF, 0xFF, 0xFF]));
    assert_eq!(vsa_of(&on[2]), (4874, 67, vec![1, 0, 0, 2]));
    let off = coa_change(NasFamily::Juniper, &s, false, None).unwrap();
    assert_eq!(off.len(), 1);
    assert_eq!(vsa_of(&off[0]), (4874, 66, b"turbo".to_vec()));

    let on = coa_change(NasFamily::Cisco, &s, true, None).unwrap();
    assert_eq!(vsa_of(&on[0]), (9, 252, b"\x0bturbo".to_vec()));
    let off = coa_change(NasFamily::Cisco, &s, false, None).unwrap();
    assert_eq!(vsa_of(&off[0]), (9, 252, b"\x0cturbo".to_vec()));

    let on = coa_change(NasFamily::Mikrotik, &s, true, Some("2M/2M")).unwrap();
    assert_eq!(vsa_of(&on[0]), (14988, 8, b"10M/10M".to_vec()));
    let off = coa_change(NasFamily::Mikrotik, &s, false, Some("2M/2M")).unwrap();
    assert_eq!(vsa_of(&off[0]), (14988, 8, b"2M/2M".to_vec()));
    assert!(coa_change(NasFamily::Mikrotik, &s, false, None)
        .unwrap()
        .is_empty());
    let mut long = s.clone();
    long.nas_service = Some("x".repeat(300));
    assert!(coa_change(NasFamily::Cisco, &long, true, None).is_err());
}

#[test]
fn thresholds_reached() {
    let mb = 1u64 << 20;
    let table: &[(u32, u32, i64, u64, Option<EndReason>)] = &[
        (0, 0, 1_000_000, u64::MAX, None),
        (60, 0, 59, 0, None),
        (60, 0, 60, 0, Some(EndReason::Timeout)),
        (0, 10, 0, 10 * mb - 1, None),
        (0, 10, 0, 10 * mb, Some(EndReason::Volume)),
        (60, 10, 61, 10 * mb, Some(EndReason::Timeout)),
    ];
    for &(t, v, secs, out, want) in table {
        assert_eq!(
            threshold_reached(&svc(t, v, None), secs, out),
            want,
            "{t} {v} {secs} {out}"
        );
    }
}
