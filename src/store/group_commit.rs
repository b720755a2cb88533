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
    /// Queues an item. True when no committer runs: the caller must start one (see
    /// [`GroupCommit::committer`]).
    pub fn push(&self, item: T) -> bool {
        let mut waiting = self.lock();
        waiting.items.push(item);
        !std::mem::replace(&mut waiting.committing, true)
    }

    /// The committer's handle on the queue, taken by the task that a push started.
    pub fn committer(&self) -> Committer<T> {
        Committer {
            queue: self.clone(),
            finished: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<T>> {
        // A panic while holding the lock leaves a consistent Vec and flag behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The running committer. Should it end before it found nothing left (a panic), the
/// items still waiting are dropped, so that whoever waits on them hears of it, and the
/// next push starts another committer instead of waiting for one that is gone.
pub struct Committer<T> {
    queue: GroupCommit<T>,
    finished: bool,
}

impl<T> Committer<T> {
    /// The next group, oldest first and at most `max` items. Empty when nothing waits:
    /// the committer is done then, and the next push starts another.
    pub fn next_group(&mut self, max: usize) -> Vec<T> {
        let mut waiting = self.queue.lock();
        let take = waiting.items.len().min(max);
        if take == 0 {
            waiting.committing = false;
            self.finished = true;
        }
        waiting.items.drain(..take).collect()
    }
}

impl<T> Drop for Committer<T> {
    fn drop(&mut self) {
        if !self.finished {
            let abandoned = {
                let mut waiting = self.queue.lock();
                waiting.committing = false;
                std::mem::take(&mut waiting.items)
            };
            drop(abandoned);
        }
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
        let mut committer = queue.committer();
        assert_eq!(committer.next_group(2), vec![1, 2]);
        assert_eq!(committer.next_group(2), vec![3]);
        assert!(!queue.push(4), "the committer has not stopped yet");
        assert_eq!(committer.next_group(2), vec![4]);
        assert_eq!(committer.next_group(2), Vec::<i32>::new(), "it stops");
        drop(committer);
        assert!(queue.push(5), "the next push starts another");
    }

    #[test]
    fn a_committer_that_dies_drops_what_waits_and_the_next_push_starts_another() {
        let queue = GroupCommit::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        assert!(queue.push(tx));
        // The committer ends before it found the queue empty (a panic mid-commit).
        drop(queue.committer());
        assert!(
            rx.recv().is_err(),
            "the waiting item was dropped: whoever waits on it hears of it"
        );
        let (tx, _rx) = std::sync::mpsc::channel::<()>();
        assert!(queue.push(tx), "the next push starts a new committer");
    }
}
