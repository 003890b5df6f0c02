//! What a SUBSCRIBE and an UNSUBSCRIBE ask for and what their acknowledgements answer, per
//! filter: subscription options (MQTT 5.0 no-local, retain-as-published, retain handling),
//! the reason code the broker gave each filter, and the reason string and user properties of
//! the SUBACK / UNSUBACK.

use crate::core::error::{Error, Result};
use crate::mqtt::Qos;

/// MQTT 5.0 retain handling: when the broker sends retained messages for a new subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: at every subscribe (the MQTT 3.1.1 behaviour).
    #[default]
    SendAtSubscribe = 0,
    /// 1: only when the subscription did not exist yet.
    SendIfNew = 1,
    /// 2: never.
    DoNotSend = 2,
}

impl RetainHandling {
    pub fn from_number(n: i64) -> Result<RetainHandling> {
        match n {
            0 => Ok(RetainHandling::SendAtSubscribe),
            1 => Ok(RetainHandling::SendIfNew),
            2 => Ok(RetainHandling::DoNotSend),
            _ => Err(Error::InvalidArgument(format!(
                "retain handling {n} is out of range; use 0 (send at subscribe), 1 (send if new) or 2 (do not send)"
            ))),
        }
    }
}

/// The options of one subscription. The default is QoS 0 with MQTT 3.1.1 behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub qos: Qos,
    /// MQTT 5.0: the broker does not send this client its own publishes on this subscription.
    pub no_local: bool,
    /// MQTT 5.0: forwarded messages keep the retain flag they were published with.
    pub retain_as_published: bool,
    /// MQTT 5.0: when retained messages are sent.
    pub retain_handling: RetainHandling,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions::qos(Qos::AtMostOnce)
    }
}

impl SubscribeOptions {
    pub fn qos(qos: Qos) -> SubscribeOptions {
        SubscribeOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    /// Whether any option only MQTT 5.0 can carry is set.
    pub fn needs_v5(&self) -> bool {
        self.no_local
            || self.retain_as_published
            || self.retain_handling != RetainHandling::SendAtSubscribe
    }
}

/// One filter of a SUBSCRIBE as the session sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRequest {
    pub filter: String,
    pub options: SubscribeOptions,
    /// The subscription identifier the handle assigned (sent only when the broker takes them).
    pub id: Option<u32>,
}

impl FilterRequest {
    pub fn new(filter: impl Into<String>, options: SubscribeOptions, id: Option<u32>) -> Self {
        FilterRequest {
            filter: filter.into(),
            options,
            id,
        }
    }
}

/// The reason string and user properties of a v5 acknowledgement (empty on 3.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    pub reason_string: Option<String>,
    pub user_properties: Vec<(String, String)>,
}

impl AckProperties {
    /// Adds another acknowledgement's properties (a call answered by several SUBACKs).
    pub fn merge(&mut self, other: AckProperties) {
        if let Some(reason) = other.reason_string {
            self.reason_string = Some(match self.reason_string.take() {
                Some(mine) if mine != reason => format!("{mine}; {reason}"),
                Some(mine) => mine,
                None => reason,
            });
        }
        self.user_properties.extend(other.user_properties);
    }
}

/// How the broker answered one filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeResult {
    /// The SUBACK reason code: 0x00..0x02 the granted QoS, 0x80 and above a refusal.
    pub reason_code: u8,
    /// The granted QoS, or the refusal (`Error::SubscribeRefused`).
    pub granted: Result<Qos>,
    /// The subscription identifier sent with it (`None` when none was).
    pub subscription_id: Option<u32>,
}

/// The answer to one subscribe call: per filter in the order given, and the SUBACKs'
/// properties.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscribeReport {
    pub filters: Vec<SubscribeResult>,
    pub ack: AckProperties,
}

/// How the broker answered one filter of an UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsubscribeResult {
    /// The UNSUBACK reason code (0x00 on MQTT 3.1.1, whose UNSUBACK has none, and when there
    /// was no connection to tell); 0x11: no subscription existed.
    pub reason_code: u8,
    /// `Ok` for 0x00 and 0x11 (nothing is subscribed afterwards either way), else the refusal
    /// (`Error::UnsubscribeRefused`).
    pub result: Result<()>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnsubscribeReport {
    pub filters: Vec<UnsubscribeResult>,
    pub ack: AckProperties,
}

impl UnsubscribeReport {
    /// Every filter done, without a broker to ask (not connected).
    pub fn all_done(count: usize) -> UnsubscribeReport {
        UnsubscribeReport {
            filters: (0..count)
                .map(|_| UnsubscribeResult {
                    reason_code: 0,
                    result: Ok(()),
                })
                .collect(),
            ack: AckProperties::default(),
        }
    }
}

/// MQTT 5.0 reason code: no subscription existed (UNSUBACK).
pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;

/// The largest subscription identifier MQTT can carry (a four-byte variable integer).
pub const MAX_SUBSCRIPTION_ID: u32 = 268_435_455;
