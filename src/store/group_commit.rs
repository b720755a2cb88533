//! Group commit: writes that arrive while a commit is under way wait for the next one,
//! which takes them all in one transaction. A commit costs about the same for one row as
//! for hundreds, so under load this turns many small commits into a few large ones, and
//! when idle a lone write goes out at once.

use std::sync::{Arc, Mutex};

/// Items waiting for their commit; cheap to clone.
pub struct GroupCommit<T>(Arc<Mutex<Waiting<T>>>);

struct Waiting<T> {
    items: Vec<T>,
    /// Whether a committer runs (it takes what waits each time its commit is done).
    committing: bool,
}

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Waiting {
            items: Vec::new(),
            committing: false,
        })))
    }
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> GroupCommit<T> {
    /// Queues an item. True when no committer runs: the caller must start one, which
    /// calls [`GroupCommit::next_group`] until it comes back empty.
    pub fn push(&self, item: T) -> bool {
        let mut waiting = self.lock();
        waiting.items.push(item);
        !std::mem::replace(&mut waiting.committing, true)
    }

    /// The next group, oldest first and at most `max` items. Empty when nothing waits:
    /// the committer stops then, and the next push starts another.
    pub fn next_group(&self, max: usize) -> Vec<T> {
        let mut waiting = self.lock();
        let take = waiting.items.len().min(max);
        if take == 0 {
            waiting.committing = false;
        }
        waiting.items.drain(..take).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<T>> {
        // A panic while holding the lock leaves a consistent Vec and flag behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_push_starts_a_committer_and_later_ones_wait_for_its_next_group() {
        let queue = GroupCommit::default();
        assert!(queue.push(1), "nothing runs yet: start a committer");
        assert!(!queue.push(2), "a committer runs: it takes this one");
        assert!(!queue.push(3));
        assert_eq!(queue.next_group(2), vec![1, 2]);
        assert_eq!(queue.next_group(2), vec![3]);
        assert!(!queue.push(4), "the committer has not stopped yet");
        assert_eq!(queue.next_group(2), vec![4]);
        assert_eq!(queue.next_group(2), Vec::<i32>::new(), "it stops");
        assert!(queue.push(5), "the next push starts another");
    }
}
