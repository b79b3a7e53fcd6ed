//! Fault steps: built from the scenario, injected, healed once (by timer,
//! by a step, or at the end).

use super::*;

/// Faults in place, each healed once (by its timer, a `heal` step or the end).
pub(super) struct Injected {
    pub(super) parts: Vec<Arc<dyn Fault>>,
    pub(super) what: String,
    pub(super) healed: Arc<AtomicBool>,
    /// For `region restore` and `restore-password`: which fault to heal.
    pub(super) tag: String,
}

/// Heals one fault once and records it. A heal that fails leaves the
/// fault counted as in place (a later heal tries again) and is an error:
/// the drill must not go on as if the environment were healthy.
pub(super) async fn heal(
    env: &Environment,
    events: &Events,
    n: usize,
    parts: &[Arc<dyn Fault>],
    healed: &AtomicBool,
    what: &str,
) -> Result<(), StepError> {
    if healed.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    for p in parts {
        if let Err(e) = p.heal(env).await {
            healed.store(false, Ordering::SeqCst);
            tracing::warn!(error = %e, fault = what, "heal failed");
            return Err(StepError::Heal {
                what: what.to_string(),
                source: Box::new(e),
            });
        }
    }
    events.push(EventKind::FaultHealed {
        fault: n,
        what: what.to_string(),
    });
    Ok(())
}

impl Drill<'_> {
    pub(super) fn build_fault(&self, f: &FaultStep) -> Vec<Arc<dyn Fault>> {
        let ms = |d: Option<crate::api::Dur>| d.map_or(0, |d| d.0.as_millis() as u64);
        let Some(link) = f.link.map(|l| l.link()) else {
            let region = f.region.map_or("s3-primary", |r| r.component());
            return vec![Arc::new(AccessDenied::new(region))];
        };
        let kind = match f.kind {
            FaultKind::Partition => return vec![Arc::new(Partition { link })],
            FaultKind::AccessDenied => {
                let region = f.region.map_or("s3-primary", |r| r.component());
                return vec![Arc::new(AccessDenied::new(region))];
            }
            FaultKind::Latency => ToxicKind::Latency {
                latency_ms: ms(f.latency),
                jitter_ms: ms(f.jitter),
            },
            FaultKind::Timeout => ToxicKind::Timeout {
                timeout_ms: ms(f.after),
            },
            FaultKind::Reset => ToxicKind::ResetPeer {
                timeout_ms: ms(f.after),
            },
            FaultKind::Bandwidth => ToxicKind::Bandwidth {
                rate_kb_s: f.rate_kb_s.unwrap_or(0),
            },
            FaultKind::SlowClose => ToxicKind::SlowClose {
                delay_ms: ms(f.delay),
            },
        };
        // Both directions: a request held on its way in is what a slow
        // network does to heartbeats and uploads alike.
        let down = Toxic::new(kind.clone());
        let mut up = Toxic::new(kind).upstream();
        up.name = format!("{}_upstream", up.name);
        vec![
            Arc::new(LinkToxic::new(link, down)),
            Arc::new(LinkToxic::new(link, up)),
        ]
    }

    pub(super) async fn inject_fault(
        &mut self,
        i: usize,
        f: &FaultStep,
    ) -> Result<String, StepError> {
        let parts = self.build_fault(f);
        let n = self.faults.len();
        if let Some(expect) = f.heartbeat {
            self.heartbeat_windows.push(HeartbeatWindow {
                fault: n,
                step: i,
                expect,
            });
        }
        self.inject(parts, format!("fault {n}"), f.duration.map(|d| d.0))
            .await
    }

    /// Injects a fault's parts; with `heal_after`, a timer heals it.
    pub(super) async fn inject(
        &mut self,
        parts: Vec<Arc<dyn Fault>>,
        tag: String,
        heal_after: Option<Duration>,
    ) -> Result<String, StepError> {
        let what = parts.first().map(|p| p.describe()).unwrap_or_default();
        for p in &parts {
            p.inject(&self.env)
                .await
                .map_err(|source| StepError::Inject {
                    what: what.clone(),
                    source: Box::new(source),
                })?;
        }
        let n = self.faults.len();
        self.events().push(EventKind::FaultInjected {
            fault: n,
            what: what.clone(),
        });
        let healed = Arc::new(AtomicBool::new(false));
        if let Some(after) = heal_after {
            let (env, events, parts, healed, what) = (
                self.env.clone(),
                self.events().clone(),
                parts.clone(),
                healed.clone(),
                what.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                // A failure here is retried, and reported, by the final heal.
                let _ = heal(&env, &events, n, &parts, &healed, &what).await;
            });
        }
        self.faults.push(Injected {
            parts,
            what: what.clone(),
            healed,
            tag,
        });
        Ok(what)
    }

    pub(super) async fn heal_tagged(&mut self, tag: &str) -> Result<String, StepError> {
        let found = self
            .faults
            .iter()
            .enumerate()
            .rev()
            .find(|(_, f)| f.tag == tag && !f.healed.load(Ordering::SeqCst));
        let Some((n, f)) = found else {
            return Err(StepError::NothingToUndo(tag.to_string()));
        };
        heal(&self.env, self.events(), n, &f.parts, &f.healed, &f.what).await?;
        Ok(format!("healed {}", f.what))
    }

    /// Heals every fault still in place, then checks nothing is left.
    pub(super) async fn heal_all(&mut self) -> Result<(), StepError> {
        let mut first = Ok(());
        for (n, f) in self.faults.iter().enumerate() {
            let r = heal(&self.env, self.events(), n, &f.parts, &f.healed, &f.what).await;
            first = first.and(r);
        }
        let rest = fault::heal_all(&self.env)
            .await
            .map_err(|source| StepError::Heal {
                what: "the environment".into(),
                source: Box::new(source),
            });
        first.and(rest)
    }
}
