//! Tests of [`Head::get_or_create_batch`]: batch resolution must give exactly what resolving
//! each label set with [`Head::get_or_create`] would.

use super::*;

#[test]
fn batch_resolves_existing_new_and_repeated_series_in_order() {
    let head = Head::new(7_200_000);
    let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
    let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
    let c = Labels::from_pairs([("__name__", "up"), ("job", "c")]);
    let (id_a, _, created) = head.get_or_create(&a);
    assert!(created);
    let batch = [&b, &a, &c, &b];
    let mut out = Vec::new();
    head.get_or_create_batch(&batch, &mut out);
    let ids: Vec<u32> = out.iter().map(|r| r.0).collect();
    let created: Vec<bool> = out.iter().map(|r| r.2).collect();
    assert_eq!(out.len(), 4);
    assert_eq!(ids[1], id_a);
    assert_eq!(
        ids[0], ids[3],
        "a repeated label set resolves to one series"
    );
    assert!(ids[0] != id_a && ids[2] != id_a && ids[0] != ids[2]);
    assert_eq!(created, [true, false, true, false]);
    for (r, l) in out.iter().zip(batch) {
        assert_eq!(&r.1.labels(), l);
    }
    // A second batch finds every series without creating any.
    head.get_or_create_batch(&[&c, &b, &a], &mut out);
    assert_eq!(
        out.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        [(ids[2], false), (ids[0], false), (id_a, false)]
    );
    assert_eq!(head.num_series(), 3);
}
