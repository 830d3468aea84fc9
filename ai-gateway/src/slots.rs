//! Reply slots, shared fairly: the gateway streams at most
//! `maxConcurrentStreams` replies at once, and no member (or tagged
//! device) holds more than a fair share of them, so one member who opens
//! many streams and never reads them cannot keep the others — and
//! household messaging asking for them — from the models. Pure.
//!
//! A member may take another slot while they hold fewer than
//! `total / (members holding slots, them included, + 1)` (at least one):
//! alone they get half, and whoever comes next always finds room. The
//! gateway's own callers (the token's holder: household messaging's
//! deliveries, the admin) are held only to the total; messaging's
//! questions count against the member they are asked for.

use std::collections::BTreeMap;

/// Whose slot it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// A member, or a tagged device's tags: held to a fair share.
    Account(String),
    /// The gateway's token holder asking for itself: held to the total.
    Operator,
}

/// Why no slot was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// Every slot is taken.
    #[error("the gateway is busy ({0} replies streaming); retry shortly")]
    Total(usize),
    /// This account holds its share.
    #[error(
        "you already have {0} replies streaming, your share while others use the gateway; \
         finish or close one first"
    )]
    Share(usize),
}

/// The slots held, by holder.
#[derive(Debug)]
pub struct Slots {
    total: usize,
    held: BTreeMap<Holder, usize>,
}

impl Slots {
    /// `total` slots (at least one), none held.
    pub fn new(total: usize) -> Slots {
        Slots {
            total: total.max(1),
            held: BTreeMap::new(),
        }
    }

    fn in_use(&self) -> usize {
        self.held.values().sum()
    }

    /// The most slots `holder` may hold now.
    pub fn share(&self, holder: &Holder) -> usize {
        if *holder == Holder::Operator {
            return self.total;
        }
        let others = self
            .held
            .keys()
            .filter(|held| matches!(held, Holder::Account(_)) && *held != holder)
            .count();
        (self.total / (others + 2)).max(1)
    }

    /// Takes a slot for `holder`, or says why not.
    pub fn take(&mut self, holder: &Holder) -> Result<(), Full> {
        if self.in_use() >= self.total {
            return Err(Full::Total(self.total));
        }
        let share = self.share(holder);
        let held = self.held.get(holder).copied().unwrap_or(0);
        if held >= share {
            return Err(Full::Share(held));
        }
        *self.held.entry(holder.clone()).or_default() += 1;
        Ok(())
    }

    /// Gives back one of `holder`'s slots.
    pub fn give_back(&mut self, holder: &Holder) {
        if let Some(held) = self.held.get_mut(holder) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.held.remove(holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Holder {
        Holder::Account(name.to_owned())
    }

    #[test]
    fn one_member_cannot_take_every_slot_and_the_next_finds_room() {
        let mut slots = Slots::new(64);
        let mut ada = 0;
        while slots.take(&member("ada")).is_ok() {
            ada += 1;
        }
        assert_eq!(ada, 32, "alone, half");
        assert_eq!(slots.take(&member("ada")), Err(Full::Share(32)));
        let mut ben = 0;
        while slots.take(&member("ben")).is_ok() {
            ben += 1;
        }
        assert_eq!(ben, 21, "a third while ada holds hers");
        assert!(slots.take(&member("cy")).is_ok(), "room for the next");
        // Household messaging's own calls still find a slot.
        assert!(slots.take(&Holder::Operator).is_ok());
    }

    #[test]
    fn the_operator_is_held_to_the_total_only_and_slots_come_back() {
        let mut slots = Slots::new(4);
        for _ in 0..4 {
            slots.take(&Holder::Operator).unwrap();
        }
        assert_eq!(slots.take(&Holder::Operator), Err(Full::Total(4)));
        assert_eq!(slots.take(&member("ada")), Err(Full::Total(4)));
        slots.give_back(&Holder::Operator);
        assert!(slots.take(&member("ada")).is_ok());
        slots.give_back(&member("ada"));
        slots.give_back(&member("ada"));
        assert_eq!(slots.held.get(&member("ada")), None);
    }

    #[test]
    fn a_single_slot_is_still_given() {
        let mut slots = Slots::new(1);
        assert!(slots.take(&member("ada")).is_ok());
        assert_eq!(slots.take(&member("ben")), Err(Full::Total(1)));
    }
}
