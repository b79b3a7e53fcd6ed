//! A damage step: one object of a backup, chosen by the seed among those
//! the backup is made of (as the runner's reader finds them, or as a
//! foreign agent's claim names them), damaged in place until healed. The
//! steps that read the backup meanwhile are noted for `damage-detected`.

use super::*;
use crate::evidence::DamageRecord;
use crate::fault::Damage;
use crate::repository::ObjectKind;
use crate::scenario::DamageStep;

impl Drill<'_> {
    pub(super) async fn damage(&mut self, i: usize, d: &DamageStep) -> Result<String, StepError> {
        let backup = self
            .resolve(&d.backup, d.tier)
            .ok_or_else(|| StepError::NoBackup {
                reference: d.backup.clone(),
                tier: d.tier.name(),
                doing: "damage",
            })?;
        let mut candidates = self.objects_of(d.tier, &backup, d.object).await?;
        candidates.sort();
        let pick = seeded(self.scenario.seed, i);
        let Some(key) = candidates.get((pick % candidates.len().max(1) as u64) as usize) else {
            return Err(StepError::NoObject {
                backup,
                tier: d.tier.name(),
                wanted: d.object.map_or("object".into(), |k| word(&k)),
            });
        };
        let fault = Damage::new(
            self.storage.objects(d.tier)?,
            d.tier.name(),
            key,
            d.how,
            pick >> 16,
        );
        let n = self.faults.len();
        let what = self
            .inject(vec![Arc::new(fault)], format!("damage {n}"), None)
            .await?;
        self.damaged.push(DamageRecord {
            fault: n,
            step: i,
            tier: d.tier,
            backup: backup.clone(),
            object: key.clone(),
            how: d.how,
            read_by: Vec::new(),
        });
        Ok(format!("{what} (backup {backup})"))
    }

    /// The keys of the objects `backup` is made of in `tier`, of one kind.
    async fn objects_of(
        &self,
        tier: Tier,
        backup: &str,
        kind: Option<ObjectKind>,
    ) -> Result<Vec<String>, StepError> {
        if self.profile.has(Capability::Repository) {
            let objects = self.storage.reader(tier).await?.objects_of(backup).await?;
            return Ok(objects
                .into_iter()
                .filter(|(k, _)| kind.is_none_or(|want| *k == want))
                .map(|(_, key)| key)
                .collect());
        }
        if let Some(kind) = kind {
            return Err(StepError::NoObject {
                backup: backup.to_string(),
                tier: tier.name(),
                wanted: format!(
                    "{} (graphdrill reads no repository of {}: leave `object` out)",
                    word(&kind),
                    self.profile.name
                ),
            });
        }
        let claimed = self.claims.get(backup).map_or(&[][..], |c| &c.objects[..]);
        Ok(claimed
            .iter()
            .filter(|o| o.tier == tier.name())
            .map(|o| o.key.clone())
            .collect())
    }

    /// Notes that step `i` reads `backup` in `tier`, for every damage to it
    /// still in place.
    pub(super) fn note_read(&mut self, i: usize, tier: Tier, backup: &str) {
        for d in &mut self.damaged {
            let in_place = !self.faults[d.fault].healed.load(Ordering::SeqCst);
            if in_place && d.tier == tier && d.backup == backup {
                d.read_by.push(i);
            }
        }
    }
}

/// A number for the drill's choices at step `i`, the same for the same seed.
fn seeded(seed: u64, i: usize) -> u64 {
    let mut material = seed.to_le_bytes().to_vec();
    material.extend((i as u64).to_le_bytes());
    let h = blake3::derive_key("graphdrill 2026 damage choice", &material);
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}
