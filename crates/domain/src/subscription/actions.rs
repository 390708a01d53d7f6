//! One entry point for the portal's and the merchant API's commands, so a caller (or a
//! test) can treat every user-facing transition alike. The billing engine's transitions
//! ([`Subscription::apply_due`], [`Subscription::renew`], the payment outcomes) are the
//! system's and are called directly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::ids::ScheduledChangeId;
use crate::policy::PortalPolicy;
use crate::subscription::cancellation::CancelRequest;
use crate::subscription::pause::PauseRequest;
use crate::subscription::plan_change::PlanChangeRequest;
use crate::subscription::send_now::SendNowAnchor;
use crate::subscription::state::{Actor, Subscription, Transition};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Pause(PauseRequest),
    Resume,
    Cancel(CancelRequest),
    WithdrawCancellation,
    ChangePlan(PlanChangeRequest),
    RemoveScheduledChange { id: ScheduledChangeId },
    SkipRenewal,
    UnskipRenewal,
    SendNow { anchor: SendNowAnchor },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Pause(_) => "pause",
            Command::Resume => "resume",
            Command::Cancel(_) => "cancel",
            Command::WithdrawCancellation => "withdraw_cancellation",
            Command::ChangePlan(_) => "change_plan",
            Command::RemoveScheduledChange { .. } => "remove_scheduled_change",
            Command::SkipRenewal => "skip",
            Command::UnskipRenewal => "unskip",
            Command::SendNow { .. } => "send_now",
        }
    }
}

impl Subscription {
    /// Runs `command` for `actor` under `policy` at `now`.
    pub fn apply(
        &self,
        command: &Command,
        policy: &PortalPolicy,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        match command {
            Command::Pause(request) => self.pause(request, policy, actor, now),
            Command::Resume => self.resume(actor, now),
            Command::Cancel(request) => self.cancel(request, policy, actor, now),
            Command::WithdrawCancellation => self.withdraw_cancellation(actor),
            Command::ChangePlan(request) => self.change_plan(request, policy, actor, now),
            Command::RemoveScheduledChange { id } => {
                self.remove_scheduled_change_as(*id, policy, actor)
            }
            Command::SkipRenewal => self.skip_renewal(policy, actor, now),
            Command::UnskipRenewal => self.unskip_renewal(actor),
            Command::SendNow { anchor } => self.send_now(*anchor, policy, actor, now),
        }
    }
}
