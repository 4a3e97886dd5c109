//! The engine's table of requests: a slab, so that posting, looking up and
//! completing a request is an index, not a hash.
//!
//! An id is a slot's index with the slot's generation above it; the
//! generation moves on each time a slot is freed, so an id outlives its
//! request harmlessly (a stale id, or one a peer made up, finds nothing).
//! Ids travel on the wire and come back from peers: they are only looked
//! up, never trusted.

/// Identifies a request in the engine's table; also travels on the wire.
/// Never 0 (the wire's "no request").
pub type RequestId = u64;

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Requests by id.
pub struct Table<T> {
    slots: Vec<Slot<T>>,
    /// Indices of slots free for reuse (their `value` is `None`).
    free: Vec<u32>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

fn split(id: RequestId) -> (usize, u32) {
    ((id & u64::from(u32::MAX)) as usize, (id >> 32) as u32)
}

impl<T> Table<T> {
    /// Stores `value` and returns its new id.
    pub fn insert(&mut self, value: T) -> RequestId {
        let index = match self.free.pop() {
            Some(index) => index as usize,
            None => {
                // Generation 1 first, so that no id is 0.
                self.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.value = Some(value);
        (u64::from(slot.generation) << 32) | index as u64
    }

    /// Stores `value` under `id`, which [`Table::next_id`] gave with no
    /// insert since.
    pub fn insert_at(&mut self, id: RequestId, value: T) {
        let stored = self.insert(value);
        assert_eq!(stored, id, "request id reserved, then another inserted");
    }

    /// The id the next [`Table::insert`] returns (for frames built before
    /// their request is stored).
    pub fn next_id(&self) -> RequestId {
        match self.free.last() {
            Some(&index) => {
                (u64::from(self.slots[index as usize].generation) << 32) | u64::from(index)
            }
            None => (1 << 32) | self.slots.len() as u64,
        }
    }

    /// The value of `id`, if it is still stored.
    pub fn get(&self, id: RequestId) -> Option<&T> {
        let (index, generation) = split(id);
        let slot = self.slots.get(index)?;
        (slot.generation == generation).then_some(slot.value.as_ref())?
    }

    /// The value of `id`, mutably, if it is still stored.
    pub fn get_mut(&mut self, id: RequestId) -> Option<&mut T> {
        let (index, generation) = split(id);
        let slot = self.slots.get_mut(index)?;
        (slot.generation == generation).then_some(slot.value.as_mut())?
    }

    /// Takes the value of `id` out; its id is dead from now on.
    pub fn remove(&mut self, id: RequestId) -> Option<T> {
        let (index, generation) = split(id);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        // Wrapping past u32::MAX skips 0, so that no id is 0.
        slot.generation = slot.generation.checked_add(1).unwrap_or(1);
        self.free.push(index as u32);
        Some(value)
    }

    /// Every stored value with its id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (RequestId, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| {
                let id = (u64::from(slot.generation) << 32) | index as u64;
                slot.value.as_mut().map(|value| (id, value))
            })
    }

    /// Every stored value.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|slot| slot.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_find_their_values_until_removed_and_never_again() {
        let mut table = Table::default();
        let a = table.insert("a");
        let b = table.insert("b");
        assert_ne!(a, 0);
        assert_eq!(table.get(a), Some(&"a"));
        assert_eq!(table.remove(a), Some("a"));
        assert_eq!(table.get(a), None);
        assert_eq!(table.remove(a), None);
        // The slot is reused under a new id; the old one stays dead.
        let next = table.next_id();
        let c = table.insert("c");
        assert_eq!(c, next);
        assert_ne!(c, a);
        assert_eq!(table.get(a), None);
        assert_eq!(table.get(c), Some(&"c"));
        *table.get_mut(b).unwrap() = "B";
        let mut all: Vec<_> = table.values().copied().collect();
        all.sort();
        assert_eq!(all, ["B", "c"]);
        assert_eq!(table.iter_mut().count(), 2);
    }

    #[test]
    fn made_up_ids_find_nothing() {
        let mut table = Table::default();
        let a = table.insert(1);
        for id in [0, a + 1, a ^ (1 << 32), u64::MAX, a | (7 << 40)] {
            assert_eq!(table.get(id), None, "id {id:#x}");
            assert_eq!(table.get_mut(id), None);
        }
        assert_eq!(table.remove(a ^ (1 << 33)), None);
        assert_eq!(table.get(a), Some(&1));
    }

    #[test]
    fn next_id_is_what_insert_returns() {
        let mut table = Table::default();
        for round in 0..100 {
            let next = table.next_id();
            let id = table.insert(round);
            assert_eq!(id, next);
            if round % 3 == 0 {
                table.remove(id);
            }
        }
    }
}
