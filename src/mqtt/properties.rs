//! MQTT 5.0 PUBLISH properties an application sets and reads: payload format, message expiry,
//! content type, response topic, correlation data, user properties.

use crate::core::error::{Error, Result};
use crate::mqtt::validate;
use bytes::Bytes;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// `Some(true)`: the payload is UTF-8; `Some(false)`: unspecified bytes.
    pub payload_is_utf8: Option<bool>,
    /// Seconds after which the broker discards the message if undelivered.
    pub message_expiry: Option<u32>,
    pub content_type: Option<String>,
    /// Topic the receiver should reply to (request/response).
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

impl PublishProperties {
    pub fn is_empty(&self) -> bool {
        *self == PublishProperties::default()
    }

    pub fn validate(&self) -> Result<()> {
        let long = |what: &str, len: usize| {
            (len > validate::MAX_STRING_LEN).then(|| {
                Error::InvalidArgument(format!("{what} is {len} bytes; MQTT allows at most 65,535"))
            })
        };
        if let Some(e) = self
            .content_type
            .as_ref()
            .and_then(|c| long("content type", c.len()))
        {
            return Err(e);
        }
        if let Some(topic) = &self.response_topic {
            validate::topic_name(topic)?;
        }
        if let Some(e) = self
            .correlation_data
            .as_ref()
            .and_then(|c| long("correlation data", c.len()))
        {
            return Err(e);
        }
        for (key, value) in &self.user_properties {
            if let Some(e) = long("user property name", key.len())
                .or_else(|| long("user property value", value.len()))
            {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bytes these properties add to a PUBLISH, excluding the property-length prefix.
    pub fn encoded_len(&self) -> usize {
        let string = |s: &Option<String>| s.as_ref().map_or(0, |s| 1 + 2 + s.len());
        self.payload_is_utf8.map_or(0, |_| 2)
            + self.message_expiry.map_or(0, |_| 5)
            + string(&self.content_type)
            + string(&self.response_topic)
            + self
                .correlation_data
                .as_ref()
                .map_or(0, |c| 1 + 2 + c.len())
            + self
                .user_properties
                .iter()
                .map(|(k, v)| 1 + 2 + k.len() + 2 + v.len())
                .sum::<usize>()
    }
}
