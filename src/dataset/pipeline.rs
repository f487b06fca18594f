//! Drawing and writing on two threads. The token draws are one sequential random stream, so
//! they cannot be split; but rendering and writing the JSON costs about as much again and can
//! overlap with them.

use std::sync::mpsc;

use super::sampler::TokenSampler;

/// About 1 MiB of ids: large enough to make hand-offs rare, small enough to stay in cache.
const BATCH_IDS: usize = 1 << 18;

#[derive(Default)]
struct Batch {
    ids: Vec<u32>,
    /// End offset in `ids` of each request of the batch.
    ends: Vec<usize>,
}

/// Draws the ids of each request (lengths in order) on a helper thread and hands them to
/// `consume` on this one, in order. Stops at the first error of `consume`.
pub fn for_each_request<E>(
    mut sampler: TokenSampler,
    lengths: &[usize],
    mut consume: impl FnMut(usize, &[u32]) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        // Two batches in flight keep both threads busy without unbounded buffering.
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(2);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        scope.spawn(move || {
            let mut batch = Batch::default();
            for &len in lengths {
                sampler.append(len, &mut batch.ids);
                batch.ends.push(batch.ids.len());
                if batch.ids.len() >= BATCH_IDS {
                    if full_tx.send(batch).is_err() {
                        return; // the writer stopped
                    }
                    batch = empty_rx.try_recv().unwrap_or_default();
                    batch.ids.clear();
                    batch.ends.clear();
                }
            }
            if !batch.ends.is_empty() {
                let _ = full_tx.send(batch);
            }
        });
        let mut index = 0;
        for batch in full_rx.iter() {
            let mut start = 0;
            for &end in &batch.ends {
                consume(index, &batch.ids[start..end])?;
                index += 1;
                start = end;
            }
            let _ = empty_tx.send(batch);
        }
        Ok(())
    })
}
