use super::*;

fn pool(weights: &[u32]) -> Pool {
    let peers = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| Peer::new(format!("10.0.0.{}", index + 1), 80, weight))
        .collect();
    Pool::new(peers).unwrap()
}

fn sequence(pool: &Pool, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| pool.next_peer().host().to_owned())
        .collect()
}

#[test]
fn smooth_weighted_round_robin_matches_nginx_for_5_1_1() {
    // nginx's documented sequence for weights a=5, b=1, c=1: a a b a c a a, repeating.
    let pool = pool(&[5, 1, 1]);
    let (a, b, c) = ("10.0.0.1", "10.0.0.2", "10.0.0.3");
    let expected = [a, a, b, a, c, a, a];
    let got = sequence(&pool, 14);
    assert_eq!(got[..7], expected);
    assert_eq!(got[7..], expected);
}

#[test]
fn equal_weights_rotate_in_order() {
    let pool = pool(&[1, 1, 1]);
    assert_eq!(
        sequence(&pool, 4),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    );
}

#[test]
fn weights_give_exact_shares() {
    let pool = pool(&[3, 2]);
    let got = sequence(&pool, 500);
    assert_eq!(got.iter().filter(|host| *host == "10.0.0.1").count(), 300);
}

#[test]
fn empty_pool_and_zero_weight_are_refused() {
    assert_eq!(Pool::new(Vec::new()).unwrap_err(), Error::NoPeers);
    assert_eq!(
        Pool::new(vec![Peer::new("::1", 8080, 0)]).unwrap_err(),
        Error::ZeroWeight {
            peer: "[::1]:8080".into()
        }
    );
}
