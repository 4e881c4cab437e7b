//! The two deterministic name generators of the template language, with
//! Azure's algorithms so generated names match real Azure.
//!
//! - `uniqueString(a, b, …)`: the arguments joined with `-`, UTF-8, hashed
//!   with Resource Manager's 64-bit Murmur variant (two 32-bit lanes), and
//!   written as 13 base-32 characters (`a–z2–7`) from the top bit down.
//! - `guid(a, b, …)`: a name-based (version 5, SHA-1) UUID of the arguments
//!   joined with `-`, in ARM's namespace `11fb06fb-712d-4ddd-98c7-e71bbd588830`.

const C1: u32 = 0x239b_961b;
const C2: u32 = 0xab0e_9789;

fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn le(b: &[u8]) -> u32 {
    b.iter()
        .enumerate()
        .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (8 * i)))
}

/// Resource Manager's 64-bit Murmur hash (seed 0).
pub fn murmur64(data: &[u8]) -> u64 {
    let (mut h1, mut h2) = (0u32, 0u32);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let k1 = le(&c[..4])
            .wrapping_mul(C1)
            .rotate_left(15)
            .wrapping_mul(C2);
        h1 = (h1 ^ k1)
            .rotate_left(19)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x561c_cd1b);
        let k2 = le(&c[4..])
            .wrapping_mul(C2)
            .rotate_left(17)
            .wrapping_mul(C1);
        h2 = (h2 ^ k2)
            .rotate_left(13)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x0bca_a747);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let k1 = le(&tail[..tail.len().min(4)])
            .wrapping_mul(C1)
            .rotate_left(15)
            .wrapping_mul(C2);
        h1 ^= k1;
        if tail.len() > 4 {
            let k2 = le(&tail[4..])
                .wrapping_mul(C2)
                .rotate_left(17)
                .wrapping_mul(C1);
            h2 ^= k2;
        }
    }
    let len = data.len() as u32;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (u64::from(h2) << 32) | u64::from(h1)
}

/// `uniqueString(values…)`.
pub fn unique_string(values: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut h = murmur64(values.join("-").as_bytes());
    let mut out = String::with_capacity(13);
    for _ in 0..13 {
        out.push(ALPHABET[(h >> 59) as usize] as char);
        h <<= 5;
    }
    out
}

/// The namespace of `guid()`.
pub const GUID_NAMESPACE: uuid::Uuid = uuid::uuid!("11fb06fb-712d-4ddd-98c7-e71bbd588830");

/// `guid(values…)`.
pub fn guid(values: &[&str]) -> String {
    uuid::Uuid::new_v5(&GUID_NAMESPACE, values.join("-").as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values Bicep's `uniqueString()` returns for these inputs.
    #[test]
    fn unique_string_matches_azure() {
        assert_eq!(unique_string(&["test"]), "rbgf3xv4ufgzg");
        assert_eq!(unique_string(&["hello", "world"]), "a7wkljktk6wne");
        assert_eq!(unique_string(&["abc"]), "cgtzqvhu4i23s");
        assert_eq!(
            unique_string(&[
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg"
            ]),
            "bmg7c6xu4tw46"
        );
        assert_eq!(unique_string(&["foo", "bar", "baz"]), "xzi4ioaxtmth4");
    }

    #[test]
    fn guid_is_version_5_in_arms_namespace() {
        let g = guid(&["a", "b"]);
        let u = uuid::Uuid::parse_str(&g).unwrap();
        assert_eq!(u.get_version_num(), 5);
        assert_eq!(g, guid(&["a-b"]), "arguments are joined with '-'");
        assert_ne!(g, guid(&["a", "c"]));
    }
}
