//! A growable set of small integers (class ids), one bit each.

/// A set of `usize` values stored as bits; grows on insert.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// An empty set.
    pub fn new() -> BitSet {
        BitSet::default()
    }

    /// Adds `value`.
    pub fn insert(&mut self, value: usize) {
        let (word, bit) = (value / 64, value % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << bit;
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: usize) -> bool {
        let (word, bit) = (value / 64, value % 64);
        self.words
            .get(word)
            .is_some_and(|slot| slot & (1 << bit) != 0)
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(index, word)| {
            let mut rest = *word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(index * 64 + bit)
            })
        })
    }
}

impl FromIterator<usize> for BitSet {
    fn from_iter<I: IntoIterator<Item = usize>>(values: I) -> BitSet {
        let mut set = BitSet::new();
        for value in values {
            set.insert(value);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_back_in_order_across_words() {
        let set: BitSet = [130, 3, 64, 63, 0].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 3, 63, 64, 130]);
        assert!(set.contains(64) && !set.contains(65) && !set.contains(10_000));
    }

    #[test]
    fn union_adds_members_of_a_longer_set() {
        let mut left: BitSet = [1, 2].into_iter().collect();
        let right: BitSet = [2, 200].into_iter().collect();
        left.union_with(&right);
        assert_eq!(left.iter().collect::<Vec<_>>(), vec![1, 2, 200]);
        assert_eq!(BitSet::new().iter().count(), 0);
    }
}
