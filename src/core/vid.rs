//! VLAN IDs and sets of them: a 4096-bit set, parsed from and printed as ranges (`1,100-110`).
//!
//! Only 1–4094 are VLANs a port can carry; 0 (priority tag) and 4095 (reserved) are refused
//! with a message naming the value.

use std::fmt;
use std::str::FromStr;

/// Smallest VID a port can carry.
pub const MIN_VID: u16 = 1;
/// Largest VID a port can carry.
pub const MAX_VID: u16 = 4094;

const WORDS: usize = 4096 / 64;

/// Checks that `vid` is a usable VLAN ID, naming it otherwise.
pub fn check_vid(vid: u64) -> Result<u16, VidError> {
    match vid {
        0 => Err(VidError::Zero),
        4095 => Err(VidError::Reserved),
        v if v > MAX_VID as u64 => Err(VidError::OutOfRange(v.to_string())),
        v => Ok(v as u16),
    }
}

/// Why a VID or a VID list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VidError {
    #[error("VID 0 is the 802.1p priority tag, not a VLAN; use 1-4094")]
    Zero,
    #[error("VID 4095 is reserved; use 1-4094")]
    Reserved,
    #[error("VID {0} is out of range; use 1-4094")]
    /// The value as written (it may not fit any integer type).
    OutOfRange(String),
    #[error("`{0}` is not a VID or a range like 100-110")]
    Syntax(String),
    #[error("range {0}-{1} is reversed; write {1}-{0}")]
    Reversed(u16, u16),
    #[error("{0} is listed twice (ranges overlap)")]
    Overlap(String),
}

/// A set of VIDs 1–4094.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VidSet {
    words: [u64; WORDS],
}

impl Default for VidSet {
    fn default() -> Self {
        Self::new()
    }
}

impl VidSet {
    pub const fn new() -> Self {
        VidSet { words: [0; WORDS] }
    }

    /// Every usable VID, 1–4094.
    pub fn all() -> Self {
        let mut s = Self::new();
        s.insert_range(MIN_VID, MAX_VID);
        s
    }

    pub fn single(vid: u16) -> Self {
        let mut s = Self::new();
        s.insert(vid);
        s
    }

    pub fn from_vids<I: IntoIterator<Item = u16>>(vids: I) -> Self {
        let mut s = Self::new();
        for v in vids {
            s.insert(v);
        }
        s
    }

    pub fn insert(&mut self, vid: u16) {
        debug_assert!((MIN_VID..=MAX_VID).contains(&vid), "VID {vid} out of range");
        self.words[vid as usize / 64] |= 1 << (vid % 64);
    }

    /// Inserts `first..=last`, a word at a time.
    pub fn insert_range(&mut self, first: u16, last: u16) {
        debug_assert!(first <= last && last <= MAX_VID);
        let (a, b) = (first as usize, last as usize);
        for w in a / 64..=b / 64 {
            let lo = if w == a / 64 { a % 64 } else { 0 };
            let hi = if w == b / 64 { b % 64 } else { 63 };
            let width = hi - lo + 1;
            let mask = if width == 64 {
                u64::MAX
            } else {
                ((1u64 << width) - 1) << lo
            };
            self.words[w] |= mask;
        }
    }

    /// VIDs in exactly one of the two sets.
    pub fn symmetric_difference(&self, other: &VidSet) -> VidSet {
        self.zip(other, |a, b| a ^ b)
    }

    pub fn remove(&mut self, vid: u16) {
        self.words[vid as usize / 64] &= !(1 << (vid % 64));
    }

    pub fn contains(&self, vid: u16) -> bool {
        vid < 4096 && self.words[vid as usize / 64] & (1 << (vid % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn union(&self, other: &VidSet) -> VidSet {
        self.zip(other, |a, b| a | b)
    }

    pub fn intersection(&self, other: &VidSet) -> VidSet {
        self.zip(other, |a, b| a & b)
    }

    pub fn difference(&self, other: &VidSet) -> VidSet {
        self.zip(other, |a, b| a & !b)
    }

    pub fn is_subset(&self, other: &VidSet) -> bool {
        self.difference(other).is_empty()
    }

    fn zip(&self, other: &VidSet, f: impl Fn(u64, u64) -> u64) -> VidSet {
        let mut out = VidSet::new();
        for i in 0..WORDS {
            out.words[i] = f(self.words[i], other.words[i]);
        }
        out
    }

    /// VIDs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some((i * 64) as u16 + b as u16)
            })
        })
    }

    /// Maximal runs of consecutive VIDs, ascending, as inclusive `(first, last)` pairs.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for v in self.iter() {
            match out.last_mut() {
                Some((_, last)) if *last + 1 == v => *last = v,
                _ => out.push((v, v)),
            }
        }
        out
    }
}

impl FromIterator<u16> for VidSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        VidSet::from_vids(iter)
    }
}

impl fmt::Display for VidSet {
    /// Ranges joined by commas (`1,100-110`); the empty set prints as nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VidSet({self})")
    }
}

impl FromStr for VidSet {
    type Err = VidError;

    /// Parses `100,200-210` (spaces around items allowed). An empty string is the empty set.
    /// Overlapping or repeated items are refused: they are almost always a typo.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = VidSet::new();
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err(VidError::Syntax(s.trim().to_string()));
            }
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (parse_one(a.trim(), item)?, parse_one(b.trim(), item)?),
                None => {
                    let v = parse_one(item, item)?;
                    (v, v)
                }
            };
            if first > last {
                return Err(VidError::Reversed(first, last));
            }
            let mut range = VidSet::new();
            range.insert_range(first, last);
            let overlap = range.intersection(&set);
            if !overlap.is_empty() {
                return Err(VidError::Overlap(overlap.to_string()));
            }
            set = set.union(&range);
        }
        Ok(set)
    }
}

fn parse_one(s: &str, item: &str) -> Result<u16, VidError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VidError::Syntax(item.to_string()));
    }
    let v: u64 = s.parse().map_err(|_| VidError::OutOfRange(s.to_string()))?;
    check_vid(v)
}

impl serde::Serialize for VidSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for VidSet {
    /// Accepts a range string (`"100,200-210"`) or a single integer (`100`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = VidSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a VID list like \"100,200-210\" or a single VID")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<VidSet, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<VidSet, E> {
                let v =
                    u64::try_from(v).map_err(|_| E::custom(VidError::OutOfRange(v.to_string())))?;
                self.visit_u64(v)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<VidSet, E> {
                check_vid(v).map(VidSet::single).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> VidSet {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_ranges() {
        assert_eq!(set("1,100-110").to_string(), "1,100-110");
        assert_eq!(set(" 5 , 3, 4 ").to_string(), "3-5");
        assert_eq!(set("").to_string(), "");
        assert_eq!(set("1-4094").len(), 4094);
        assert_eq!(set("1-4094"), VidSet::all());
        assert_eq!(set("4094").ranges(), vec![(4094, 4094)]);
    }

    #[test]
    fn refuses_zero_4095_and_beyond_naming_the_value() {
        assert_eq!("0".parse::<VidSet>(), Err(VidError::Zero));
        assert_eq!("4095".parse::<VidSet>(), Err(VidError::Reserved));
        assert_eq!("10-4095".parse::<VidSet>(), Err(VidError::Reserved));
        assert_eq!(
            "5000".parse::<VidSet>(),
            Err(VidError::OutOfRange("5000".into()))
        );
        let msg = "4095".parse::<VidSet>().unwrap_err().to_string();
        assert!(msg.contains("4095"), "{msg}");
    }

    #[test]
    fn refuses_reversed_overlapping_and_garbage() {
        assert_eq!("20-10".parse::<VidSet>(), Err(VidError::Reversed(20, 10)));
        assert_eq!(
            "1-10,5".parse::<VidSet>(),
            Err(VidError::Overlap("5".into()))
        );
        assert_eq!(
            "1-10,8-12".parse::<VidSet>(),
            Err(VidError::Overlap("8-10".into()))
        );
        assert_eq!("7,7".parse::<VidSet>(), Err(VidError::Overlap("7".into())));
        assert!(matches!("abc".parse::<VidSet>(), Err(VidError::Syntax(_))));
        assert!(matches!("1,,2".parse::<VidSet>(), Err(VidError::Syntax(_))));
        assert!(matches!("-5".parse::<VidSet>(), Err(VidError::Syntax(_))));
        assert!(matches!("+5".parse::<VidSet>(), Err(VidError::Syntax(_))));
        assert!(matches!(
            "1-2-3".parse::<VidSet>(),
            Err(VidError::Syntax(_))
        ));
        // too large for any integer: named as written
        assert_eq!(
            "99999999999999999999999".parse::<VidSet>(),
            Err(VidError::OutOfRange("99999999999999999999999".into()))
        );
    }

    #[test]
    fn set_algebra() {
        let a = set("1-10");
        let b = set("5-15");
        assert_eq!(a.union(&b), set("1-15"));
        assert_eq!(a.intersection(&b), set("5-10"));
        assert_eq!(a.difference(&b), set("1-4"));
        assert!(set("2-3").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(VidSet::new().is_empty());
    }

    #[test]
    fn insert_range_matches_inserting_one_by_one() {
        for (a, b) in [
            (1, 1),
            (1, 63),
            (63, 64),
            (64, 127),
            (60, 200),
            (2, 4094),
            (4094, 4094),
            (128, 191),
        ] {
            let mut by_word = VidSet::new();
            by_word.insert_range(a, b);
            let one_by_one: VidSet = (a..=b).collect();
            assert_eq!(by_word, one_by_one, "{a}-{b}");
        }
        assert_eq!(set("1-5").symmetric_difference(&set("4-8")), set("1-3,6-8"));
    }

    #[test]
    fn iter_is_ascending_across_word_boundaries() {
        let s = set("63-65,127,128,4094");
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![63, 64, 65, 127, 128, 4094]
        );
        assert!(s.contains(64) && !s.contains(66) && !s.contains(4095));
    }

    #[test]
    fn round_trips_every_range_shape() {
        for text in ["1", "1-2", "1,3", "2-4094", "1,3,5-7,4000-4094", "64-127"] {
            assert_eq!(set(text).to_string(), text);
        }
    }

    #[test]
    fn serde_accepts_string_or_integer() {
        #[derive(serde::Deserialize)]
        struct T {
            a: VidSet,
            b: VidSet,
        }
        let t: T = toml::from_str("a = \"1,5-6\"\nb = 7").unwrap();
        assert_eq!(t.a, set("1,5-6"));
        assert_eq!(t.b, set("7"));
        let e = toml::from_str::<T>("a = \"4095\"\nb = 7").err().unwrap();
        assert!(e.to_string().contains("4095"), "{e}");
        let e = toml::from_str::<T>("a = \"1\"\nb = 0").err().unwrap();
        assert!(e.to_string().contains("VID 0"), "{e}");
    }
}
