//! Random sequences of actions by random actors under random policies never produce an
//! invalid subscription, and availability agrees with the transitions at every step.

use proptest::prelude::*;

use super::availability::{assert_agrees, cancel_request, pause_request};
use super::*;
use crate::ids::GenerateId;
use crate::policy::{CancellationMode, ImmediateCancelTiming, NoticeRule};
use crate::subscription::ChangeType;
use crate::subscription::{
    AccessEnd, Actor, CancelRequest, CancelTiming, CancellationReason, OnResume, PauseEnd,
    PauseRequest, PauseStart, PlanChangeRequest, available_actions,
};

#[derive(Clone, Debug)]
enum Step {
    Advance {
        hours: i64,
    },
    RunEngine,
    Pause {
        actor: Actor,
        start: u8,
        end: u8,
        keep_anchor: bool,
    },
    Resume {
        actor: Actor,
    },
    Cancel {
        actor: Actor,
        reason: bool,
        confirm: bool,
        timing: Option<CancelTiming>,
        access: Option<AccessEnd>,
    },
    Withdraw {
        actor: Actor,
    },
    ChangePlan {
        actor: Actor,
        plan: usize,
    },
    RemoveChange {
        actor: Actor,
        index: usize,
    },
    PaymentFailed,
    PaymentRecovered,
    MarkUnpaid,
    Skip {
        actor: Actor,
    },
    Unskip {
        actor: Actor,
    },
    SendNow {
        actor: Actor,
        reset: bool,
    },
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![3 => Just(Actor::Customer), 1 => Just(Actor::Merchant), 1 => Just(Actor::System)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..24 * 50).prop_map(|hours| Step::Advance { hours }),
        3 => Just(Step::RunEngine),
        3 => (actor(), 0u8..3, 0u8..3, any::<bool>())
            .prop_map(|(actor, start, end, keep_anchor)| Step::Pause { actor, start, end, keep_anchor }),
        2 => actor().prop_map(|actor| Step::Resume { actor }),
        1 => (
            actor(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(prop_oneof![
                Just(CancelTiming::Now),
                Just(CancelTiming::PeriodEnd),
                // A chosen date this many hours ahead (made absolute when the step runs).
                (1i64..24 * 70).prop_map(|hours| CancelTiming::At {
                    date: DateTime::UNIX_EPOCH + TimeDelta::hours(hours)
                }),
            ]),
            proptest::option::of(prop_oneof![Just(AccessEnd::UntilPeriodEnd), Just(AccessEnd::Immediately)]),
        )
            .prop_map(|(actor, reason, confirm, timing, access)| Step::Cancel { actor, reason, confirm, timing, access }),
        2 => actor().prop_map(|actor| Step::Withdraw { actor }),
        2 => (actor(), 0usize..4).prop_map(|(actor, plan)| Step::ChangePlan { actor, plan }),
        2 => (actor(), 0usize..4).prop_map(|(actor, index)| Step::RemoveChange { actor, index }),
        1 => Just(Step::PaymentFailed),
        1 => Just(Step::PaymentRecovered),
        1 => Just(Step::MarkUnpaid),
        2 => actor().prop_map(|actor| Step::Skip { actor }),
        1 => actor().prop_map(|actor| Step::Unskip { actor }),
        1 => (actor(), any::<bool>()).prop_map(|(actor, reset)| Step::SendNow { actor, reset }),
    ]
}

fn portal_policy() -> impl Strategy<Value = PortalPolicy> {
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        prop_oneof![
            Just(CancellationMode::Request),
            Just(CancellationMode::Immediate)
        ],
        prop_oneof![
            Just(ImmediateCancelTiming::Now),
            Just(ImmediateCancelTiming::PeriodEnd)
        ],
        prop_oneof![
            Just(NoticeRule::LaterOfNoticeAndPeriodEnd),
            Just(NoticeRule::NoticeOnly)
        ],
        0u32..60,
        proptest::option::of(1u32..120),
        (any::<bool>(), proptest::option::of(1u32..4)),
    )
        .prop_map(
            |(
                (allow_pause, allow_cancel, allow_plan_change, keep_access),
                mode,
                timing,
                rule,
                notice,
                max_pause,
                (allow_skip, max_consecutive_skips),
            )| {
                PortalPolicy {
                    allow_pause,
                    allow_cancel,
                    allow_plan_change,
                    keep_access_while_paused: keep_access,
                    cancellation_mode: mode,
                    immediate_cancel_timing: timing,
                    notice_rule: rule,
                    notice_period_days: notice,
                    max_pause_days: max_pause,
                    switchable_plan_ids: Vec::new(),
                    allow_skip,
                    max_consecutive_skips,
                    allow_send_now: allow_skip,
                }
            },
        )
}

fn cadence() -> impl Strategy<Value = Cadence> {
    prop_oneof![
        Just(Cadence::monthly()),
        Just(Cadence::new(Interval::Week, 1).unwrap()),
        Just(Cadence::new(Interval::Month, 3).unwrap()),
        Just(Cadence::new(Interval::Year, 1).unwrap()),
        Just(Cadence::new(Interval::Day, 10).unwrap()),
    ]
}

struct World {
    s: Subscription,
    now: DateTime<Utc>,
    policy: PortalPolicy,
    plans: Vec<PlanTerms>,
}

impl World {
    fn pause_request(&self, start: u8, end: u8, keep_anchor: bool) -> PauseRequest {
        let start = match start {
            0 => PauseStart::Now,
            1 => PauseStart::PeriodEnd,
            _ => PauseStart::At {
                date: self.now + days(3),
            },
        };
        let end = match end {
            0 => PauseEnd::OpenEnded,
            1 => PauseEnd::AfterCycles { cycles: 1 },
            _ => PauseEnd::At {
                date: self.now + days(20),
            },
        };
        let on_resume = if keep_anchor {
            OnResume::KeepAnchor
        } else {
            OnResume::ResetAnchor
        };
        PauseRequest {
            start,
            end,
            on_resume,
        }
    }

    /// Runs one step; `None` when the step is refused (which must leave nothing changed,
    /// as the subscription is only replaced on success).
    fn run(&mut self, step: &Step) -> Option<Transition> {
        let (s, p, now) = (&self.s, &self.policy, self.now);
        let result = match step {
            Step::Advance { hours } => {
                self.now += TimeDelta::hours(*hours);
                return None;
            }
            Step::RunEngine => return self.run_engine(),
            Step::Pause {
                actor,
                start,
                end,
                keep_anchor,
            } => s.pause(
                &self.pause_request(*start, *end, *keep_anchor),
                p,
                *actor,
                now,
            ),
            Step::Resume { actor } => s.resume(*actor, now),
            Step::Cancel {
                actor,
                reason,
                confirm,
                timing,
                access,
            } => {
                // The strategy's chosen dates are offsets from the epoch: from now here.
                let timing = timing.map(|t| match t {
                    CancelTiming::At { date } => CancelTiming::At {
                        date: now + (date - DateTime::UNIX_EPOCH),
                    },
                    other => other,
                });
                let request = CancelRequest {
                    reason: reason.then_some(CancellationReason::MissingFeatures),
                    message: None,
                    confirm: *confirm,
                    timing,
                    access: *access,
                };
                s.cancel(&request, p, *actor, now)
            }
            Step::Withdraw { actor } => s.withdraw_cancellation(*actor),
            Step::ChangePlan { actor, plan } => {
                let request = PlanChangeRequest {
                    to: self.plans[*plan],
                    product: crate::subscription::TargetProduct::Same,
                };
                s.change_plan(&request, p, *actor, now)
            }
            Step::RemoveChange { actor, index } => match s.scheduled_changes.get(*index) {
                Some(change) => s.remove_scheduled_change(change.id, *actor),
                None => return None,
            },
            Step::PaymentFailed => s.record_payment_failure(),
            Step::PaymentRecovered => s.record_payment_recovery(),
            Step::MarkUnpaid => s.mark_unpaid(),
            Step::Skip { actor } => s.skip_renewal(p, *actor, now),
            Step::Unskip { actor } => s.unskip_renewal(*actor),
            Step::SendNow { actor, reset } => {
                let anchor = if *reset {
                    crate::subscription::SendNowAnchor::Reset
                } else {
                    crate::subscription::SendNowAnchor::Keep
                };
                s.send_now(anchor, p, *actor, now)
            }
        };
        result.ok()
    }

    /// What the worker does: apply due changes, then renew every ended period.
    fn run_engine(&mut self) -> Option<Transition> {
        let mut events = Vec::new();
        for _ in 0..500 {
            let due = self
                .s
                .apply_due(self.now)
                .expect("apply_due never fails in range");
            self.s = checked(due.clone()).subscription;
            events.extend(due.events);
            match self.s.renew(self.now) {
                Ok(t) => {
                    self.s = checked(t.clone()).subscription;
                    events.extend(t.events);
                }
                Err(_) => break,
            }
        }
        let again = self.s.apply_due(self.now).expect("apply_due is repeatable");
        assert!(
            again.events.is_empty(),
            "apply_due is idempotent: {:?}",
            again.events
        );
        Some(Transition {
            subscription: self.s.clone(),
            events,
            overridden: Vec::new(),
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_action_sequences_keep_every_invariant(
        start_days in 0i64..(365 * 50),
        trial_days in prop_oneof![Just(0u32), 1u32..30],
        cadence in cadence(),
        policy in portal_policy(),
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let now = at(1990, 1, 31) + days(start_days);
        let plan = |amount| PlanTerms::new(PlanId::generate(), Money::new(amount, eur()), cadence).unwrap();
        let other = |amount| PlanTerms::new(PlanId::generate(), Money::new(amount, eur()), Cadence::monthly()).unwrap();
        let current = plan(1000);
        let mut world = World {
            s: subscription(current, trial_days, now),
            now,
            policy,
            plans: vec![plan(2500), plan(400), other(1200), current],
        };
        for step in &steps {
            let before = world.s.clone();
            if let Some(t) = world.run(step) {
                let t = checked(t);
                if !matches!(step, Step::RunEngine) {
                    prop_assert!(!t.events.is_empty(), "{step:?} succeeded without an event");
                }
                if before.is_canceled() {
                    prop_assert!(t.events.is_empty(), "a canceled subscription changed: {step:?}");
                }
                world.s = t.subscription;
            }
            let _ = world.s.has_access(world.now);
            let plans = world.plans.clone();
            assert_agrees(&world.s, &world.policy, &plans, world.now);
        }
    }

    #[test]
    fn customers_never_exceed_the_pause_limit(
        max in 1u32..200,
        start_kind in 0u8..3,
        end_kind in 0u8..3,
        offset_days in 0i64..40,
    ) {
        let p = PortalPolicy { max_pause_days: Some(max), ..policy() };
        let world = World { s: active(), now: start() + days(offset_days), policy: p.clone(), plans: Vec::new() };
        let request = world.pause_request(start_kind, end_kind, false);
        if let Ok(t) = world.s.pause(&request, &p, Actor::Customer, world.now) {
            let t = checked(t);
            let (starts, resumes) = match (&t.subscription.pause, t.subscription.pending(ChangeType::Pause)) {
                (Some(pause), _) => (pause.started_at, pause.resumes_at),
                (None, Some(change)) => match change.kind {
                    crate::subscription::ScheduledChangeKind::Pause { resumes_at, .. } => (change.due_at, resumes_at),
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            };
            let resumes = resumes.expect("a customer's pause always ends under a limit");
            prop_assert!(resumes - starts <= days(i64::from(max)));
        }
    }

    #[test]
    fn the_portal_helpers_agree_on_fresh_subscriptions(
        offset_days in 0i64..30,
        policy in portal_policy(),
    ) {
        let now = start() + days(offset_days);
        let plans = [monthly(50), monthly(5000)];
        for s in [active(), trialing()] {
            assert_agrees(&s, &policy, &plans, now);
            let a = available_actions(&s, &policy, &[], crate::catalog::QuantityLimits::default(), now);
            prop_assert!(a.change_plan.is_none());
            let _ = (pause_request(now), cancel_request());
        }
    }
}
