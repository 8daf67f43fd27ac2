//! Endpoints: where events go, which ones, signed with what, and whether delivery is on.
//!
//! This module owns the endpoint model ([`Endpoint`]), its validated parts ([`EndpointUrl`],
//! [`EventFilter`], [`CustomHeaders`]) and its stored form ([`EndpointRecord`]). It does not
//! decide whether a URL's address is allowed (that is [`crate::AddressPolicy`]), and it never
//! exposes a secret except through [`EndpointRecord`], which exists for the stores.

mod filter;
mod headers;
pub(crate) mod id;
mod url;

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroize;

pub use filter::{EventFilter, EventPattern, FilterError, MAX_FILTER_PATTERNS, PatternError};
pub use headers::{
    CustomHeaderError, CustomHeaders, MAX_CUSTOM_HEADER_VALUE_LEN, MAX_CUSTOM_HEADERS,
    is_reserved_header,
};
pub use id::EndpointId;
pub use url::{EndpointUrl, MAX_URL_LEN, UrlError};

use crate::{ActiveSecret, EventType, RetrySchedule, Secret, SecretError, SecretSet};

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisableReason {
    /// An operator disabled it.
    Manual,
    /// It answered 410 Gone.
    Gone,
    /// Every attempt has failed since `since`, for longer than the
    /// [`HealthPolicy`](crate::HealthPolicy) allows.
    Failing {
        /// The first failure of the streak.
        #[serde(with = "crate::timestamp")]
        since: OffsetDateTime,
    },
}

/// Whether deliveries to an endpoint are attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndpointStatus {
    /// Deliveries are attempted.
    Enabled,
    /// Deliveries are kept, paused, until the endpoint is enabled again.
    Disabled {
        /// Why.
        reason: DisableReason,
        /// Since when.
        #[serde(with = "crate::timestamp")]
        at: OffsetDateTime,
    },
}

/// The longest endpoint description accepted, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// A registered webhook endpoint.
///
/// ```
/// use nopos_webhooks::{Endpoint, EndpointId, EndpointUrl, EventFilter, EventType, Secret, SecretSet};
/// use time::macros::datetime;
///
/// let now = datetime!(2024-11-10 10:30 UTC);
/// let endpoint = Endpoint::new(
///     EndpointId::generate(now),
///     EndpointUrl::parse("https://your-app.com/webhooks/nopos")?,
///     EventFilter::parse(["transaction.completed", "inventory.low_stock", "payment.succeeded"])?,
///     SecretSet::new(Secret::new("your_webhook_secret")?),
///     now,
/// )
/// .with_description("till 1");
/// assert!(endpoint.subscribes_to(&EventType::PAYMENT_SUCCEEDED));
/// assert!(endpoint.is_enabled());
/// // Debug never shows the secret.
/// assert!(!format!("{endpoint:?}").contains("your_webhook_secret"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// Where deliveries are sent.
    pub url: EndpointUrl,
    /// The event types it receives.
    pub filter: EventFilter,
    /// The secrets deliveries are signed with.
    pub secrets: SecretSet,
    /// Enabled, or disabled with a reason.
    pub status: EndpointStatus,
    /// Free text for people (at most [`MAX_DESCRIPTION_LEN`] characters).
    pub description: Option<String>,
    /// Extra headers sent with every delivery.
    pub headers: CustomHeaders,
    /// Its own retry schedule; `None` uses the dispatcher's.
    pub retry_schedule: Option<RetrySchedule>,
    /// When it was registered.
    pub created_at: OffsetDateTime,
}

impl Endpoint {
    /// An enabled endpoint with no description, custom headers or own schedule.
    pub fn new(
        id: EndpointId,
        url: EndpointUrl,
        filter: EventFilter,
        secrets: SecretSet,
        now: OffsetDateTime,
    ) -> Endpoint {
        Endpoint {
            id,
            url,
            filter,
            secrets,
            status: EndpointStatus::Enabled,
            description: None,
            headers: CustomHeaders::new(),
            retry_schedule: None,
            created_at: now,
        }
    }

    /// Sets the description, cut to [`MAX_DESCRIPTION_LEN`] characters.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Endpoint {
        let mut description: String = description.into();
        if let Some((cut, _)) = description.char_indices().nth(MAX_DESCRIPTION_LEN) {
            description.truncate(cut);
        }
        self.description = Some(description);
        self
    }

    /// Sets the custom headers.
    #[must_use]
    pub fn with_headers(mut self, headers: CustomHeaders) -> Endpoint {
        self.headers = headers;
        self
    }

    /// Sets the endpoint's own retry schedule.
    #[must_use]
    pub fn with_retry_schedule(mut self, schedule: RetrySchedule) -> Endpoint {
        self.retry_schedule = Some(schedule);
        self
    }

    /// Whether deliveries are attempted.
    pub fn is_enabled(&self) -> bool {
        self.status == EndpointStatus::Enabled
    }

    /// Whether the endpoint subscribes to `event_type`, whatever its status: an emitter creates
    /// deliveries for disabled endpoints too, paused, so that nothing is lost while it is off.
    pub fn subscribes_to(&self, event_type: &EventType) -> bool {
        self.filter.matches(event_type)
    }

    /// The schedule for its deliveries: its own, or `default`.
    pub fn schedule_or<'a>(&'a self, default: &'a RetrySchedule) -> &'a RetrySchedule {
        self.retry_schedule.as_ref().unwrap_or(default)
    }

    /// Disables it at `now` for `reason`; an endpoint already disabled keeps its first reason.
    pub fn disable(&mut self, now: OffsetDateTime, reason: DisableReason) {
        if self.is_enabled() {
            self.status = EndpointStatus::Disabled { reason, at: now };
        }
    }

    /// Enables it.
    pub fn enable(&mut self) {
        self.status = EndpointStatus::Enabled;
    }

    /// The stored form, secrets included.
    pub fn to_record(&self) -> EndpointRecord {
        EndpointRecord {
            id: self.id.clone(),
            url: self.url.clone(),
            filter: self.filter.clone(),
            secrets: self
                .secrets
                .entries()
                .iter()
                .map(|entry| StoredSecret {
                    secret: entry.secret.expose_secret().to_owned(),
                    expires_at: entry.expires_at,
                })
                .collect(),
            status: self.status,
            description: self.description.clone(),
            headers: self.headers.clone(),
            retry_schedule: self.retry_schedule.clone(),
            created_at: self.created_at,
        }
    }
}

/// An endpoint as a store saves it: a plain serde struct, secrets in clear text.
///
/// Keep it out of API responses and logs; `Debug` redacts the secrets, serialization does not
/// (that is its purpose). [`EndpointRecord::into_endpoint`] validates everything again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointRecord {
    /// The endpoint's id.
    pub id: EndpointId,
    /// Its URL.
    pub url: EndpointUrl,
    /// Its subscriptions.
    pub filter: EventFilter,
    /// Its secrets, newest first.
    pub secrets: Vec<StoredSecret>,
    /// Enabled or disabled.
    pub status: EndpointStatus,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its custom headers.
    #[serde(default)]
    pub headers: CustomHeaders,
    /// Its own retry schedule.
    #[serde(default)]
    pub retry_schedule: Option<RetrySchedule>,
    /// When it was registered.
    #[serde(with = "crate::timestamp")]
    pub created_at: OffsetDateTime,
}

/// One stored secret of an [`EndpointRecord`]. `Debug` redacts it; it is zeroed on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredSecret {
    /// The secret text, exactly as registered.
    pub secret: String,
    /// When it stops being valid; `None` for the current secret.
    #[serde(default, with = "crate::timestamp::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl StoredSecret {
    /// A stored secret from its text and expiry (for stores that keep them in columns).
    pub fn new(secret: String, expires_at: Option<OffsetDateTime>) -> StoredSecret {
        StoredSecret { secret, expires_at }
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Drop for StoredSecret {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// Why an [`EndpointRecord`] could not be turned back into an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record has no secrets (or only expired ones, which are dropped first).
    #[error("endpoint record has no secret")]
    NoSecrets,
    /// A stored secret is not a valid secret.
    #[error("stored secret {index} is invalid: {source}")]
    InvalidSecret {
        /// Its position, from 0.
        index: usize,
        /// What is wrong (never the secret itself).
        source: SecretError,
    },
}

impl EndpointRecord {
    /// The endpoint, with the secrets that are still valid at `now`.
    ///
    /// # Errors
    /// [`RecordError`] for a record without secrets or with an invalid one.
    pub fn into_endpoint(self, now: OffsetDateTime) -> Result<Endpoint, RecordError> {
        let entries = self
            .secrets
            .iter()
            .enumerate()
            .map(|(index, stored)| {
                Secret::new(&stored.secret)
                    .map(|secret| ActiveSecret {
                        secret,
                        expires_at: stored.expires_at,
                    })
                    .map_err(|source| RecordError::InvalidSecret { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secrets = SecretSet::from_entries(entries, now).ok_or(RecordError::NoSecrets)?;
        Ok(Endpoint {
            id: self.id,
            url: self.url,
            filter: self.filter,
            secrets,
            status: self.status,
            description: self.description,
            headers: self.headers,
            retry_schedule: self.retry_schedule,
            created_at: self.created_at,
        })
    }
}
