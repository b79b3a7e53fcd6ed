//! The Merkle root of a backup's chunk list: BLAKE3 over the chunk names in
//! stream order. Leaves are `H(0x00 || name)`, inner nodes `H(0x01 || l || r)`;
//! an odd node is carried up unchanged. The empty list has root `H(0x02)`.

pub fn root<S: AsRef<str>>(names: &[S]) -> [u8; 32] {
    if names.is_empty() {
        return *blake3::hash(&[2]).as_bytes();
    }
    let mut level: Vec<[u8; 32]> = names
        .iter()
        .map(|n| {
            let mut h = blake3::Hasher::new();
            h.update(&[0]).update(n.as_ref().as_bytes());
            *h.finalize().as_bytes()
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[1]).update(l).update(r);
                    *h.finalize().as_bytes()
                }
                [one] => *one,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_change_the_root() {
        let a = root(&["x", "y", "z"]);
        assert_eq!(a, root(&["x", "y", "z"]));
        assert_ne!(a, root(&["y", "x", "z"]));
        assert_ne!(a, root(&["x", "y"]));
        assert_ne!(root::<&str>(&[]), root(&[""]));
    }
}
