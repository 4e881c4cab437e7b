//! Disk images outlive nothing: when a resource group (or any scope) goes,
//! the images of its disks, snapshots and disk restore points are recorded,
//! in the transaction that removes them, to be freed once it has committed.
//! The table is an outbox: a crash between the commit and the delete leaves
//! the row, and the next sweep frees the image.

use recoverite_arm::{ArmError, ScopeCascade};
use recoverite_blockstore::BlockStore;
use recoverite_store::{Outbox, Store, Table, WriteTx};

use crate::disks::{DISK_TYPE, SNAPSHOT_TYPE};

/// Unique ids of images whose records are gone.
pub const TO_FREE: Outbox = Outbox(Table("compute_images_to_free"));

pub struct ImagesCascade;

impl ScopeCascade for ImagesCascade {
    fn scope_deleted(&self, _tx: &mut WriteTx, _scope: &str) -> Result<(), ArmError> {
        Ok(())
    }

    fn scope_deleting(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        for ty in [DISK_TYPE, SNAPSHOT_TYPE] {
            for d in crate::managed_disk::list(tx, scope, ty)? {
                TO_FREE.record(tx, &d.properties.unique_id)?;
            }
        }
        for u in crate::restore_points::disk_points_in(tx, scope)? {
            TO_FREE.record(tx, &u)?;
        }
        Ok(())
    }
}

/// Frees the images recorded for freeing; returns how many went.
pub fn sweep(store: &Store, blocks: &BlockStore) -> Result<usize, ArmError> {
    TO_FREE.drain(store, |u| match blocks.delete(u) {
        Ok(()) => Ok::<_, ArmError>(true),
        Err(e) => {
            tracing::warn!("could not free disk image {u}: {e}");
            Ok(false)
        }
    })
}
