//! The typed payloads of the built-in NoPOS events.
//!
//! Each payload is the `data` object of one event type. Fields the announcement shows or its use
//! cases read are present under those names; the rest is what a POS integration needs next to them.
//! Optional fields are `Option`s (absent on the wire when `None`), lists default to empty, and unknown
//! fields are ignored when parsing, so a newer emitter never breaks an older receiver.
//!
//! Every payload struct is `#[non_exhaustive]` because NoPOS adds fields over time: build one with
//! its `new` (the required fields) and set the optional ones afterwards.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::EventPayload;
use crate::{EventType, Money};

/// Defines a payload struct: required fields become `new`'s arguments, optional fields start `None`,
/// list fields start empty.
macro_rules! payload {
    (
        $(#[$meta:meta])*
        $name:ident for $event_type:ident {
            $($(#[$rdoc:meta])* $req:ident: $rty:ty,)*
        }
        optional {
            $($(#[$odoc:meta])* $opt:ident: $oty:ty,)*
        }
        lists {
            $($(#[$ldoc:meta])* $list:ident: $lty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[non_exhaustive]
        pub struct $name {
            $($(#[$rdoc])* pub $req: $rty,)*
            $(
                $(#[$odoc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $opt: Option<$oty>,
            )*
            $(
                $(#[$ldoc])*
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                pub $list: Vec<$lty>,
            )*
        }

        impl $name {
            /// A payload with its required fields; optional fields start as `None` and lists empty.
            #[allow(clippy::too_many_arguments)]
            pub fn new($($req: impl Into<$rty>),*) -> Self {
                Self {
                    $($req: $req.into(),)*
                    $($opt: None,)*
                    $($list: Vec::new(),)*
                }
            }
        }

        impl EventPayload for $name {
            const EVENT_TYPE: EventType = EventType::$event_type;
        }
    };
}

/// One line of a sale or refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LineItem {
    /// The product sold.
    pub product_id: String,
    /// The variant sold, when the product has variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// Stock-keeping unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Display name at the time of sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Units sold (negative on a return line).
    pub quantity: i64,
    /// Price of one unit.
    pub unit_price: Money,
    /// Line total after line discounts, when it differs from `quantity × unit_price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Money>,
}

impl LineItem {
    /// A line with its required fields.
    pub fn new(product_id: impl Into<String>, quantity: i64, unit_price: Money) -> LineItem {
        LineItem {
            product_id: product_id.into(),
            variant_id: None,
            sku: None,
            name: None,
            quantity,
            unit_price,
            total: None,
        }
    }
}

payload! {
    /// `inventory.updated`: the stock level of an item at a location changed.
    InventoryUpdated for INVENTORY_UPDATED {
        /// The product whose stock changed.
        product_id: String,
        /// The location (store, warehouse) whose stock changed.
        location_id: String,
        /// Units on hand after the change (may be negative when oversold).
        quantity: i64,
    }
    optional {
        /// The variant whose stock changed, for products with variants.
        variant_id: String,
        /// Stock-keeping unit.
        sku: String,
        /// Units on hand before the change.
        previous_quantity: i64,
        /// Why it changed: `sale`, `refund`, `restock`, `adjustment`, `transfer`, `count`, …
        reason: String,
        /// The transaction that caused the change, when a sale or refund did.
        transaction_id: String,
    }
    lists {}
}

payload! {
    /// `inventory.low_stock`: an item's stock fell to or below its reorder point.
    InventoryLowStock for INVENTORY_LOW_STOCK {
        /// The product running low.
        product_id: String,
        /// The location running low.
        location_id: String,
        /// Units on hand now.
        quantity: i64,
        /// The level at or below which the item should be reordered.
        reorder_point: i64,
    }
    optional {
        /// The variant running low.
        variant_id: String,
        /// Stock-keeping unit.
        sku: String,
        /// Product name, for alerts.
        name: String,
        /// How many units to reorder.
        reorder_quantity: i64,
        /// The preferred supplier to reorder from.
        supplier_id: String,
    }
    lists {}
}

payload! {
    /// `product.created`: a product was added to the catalogue.
    ProductCreated for PRODUCT_CREATED {
        /// The new product.
        product_id: String,
        /// Display name.
        name: String,
    }
    optional {
        /// Stock-keeping unit.
        sku: String,
        /// Barcode (EAN/UPC/GTIN).
        barcode: String,
        /// Selling price.
        price: Money,
        /// ISO 4217 currency of `price`, such as `USD`.
        currency: String,
        /// Purchase cost.
        cost: Money,
        /// Catalogue category.
        category: String,
        /// The variant, when the event is about one variant.
        variant_id: String,
        /// The preferred supplier.
        supplier_id: String,
        /// `active`, `draft` or `archived`.
        status: String,
    }
    lists {}
}

payload! {
    /// `product.updated`: product details changed.
    ProductUpdated for PRODUCT_UPDATED {
        /// The product that changed.
        product_id: String,
        /// Display name after the change.
        name: String,
    }
    optional {
        /// Stock-keeping unit.
        sku: String,
        /// Barcode (EAN/UPC/GTIN).
        barcode: String,
        /// Selling price after the change.
        price: Money,
        /// ISO 4217 currency of `price`.
        currency: String,
        /// Purchase cost.
        cost: Money,
        /// Catalogue category.
        category: String,
        /// The variant, when the change is about one variant.
        variant_id: String,
        /// The preferred supplier.
        supplier_id: String,
        /// `active`, `draft` or `archived`.
        status: String,
    }
    lists {
        /// Names of the fields that changed, such as `price`.
        changed_fields: String,
    }
}

payload! {
    /// `transaction.created`: a sale was started at a register or online.
    TransactionCreated for TRANSACTION_CREATED {
        /// The sale.
        transaction_id: String,
        /// Total amount so far.
        amount: Money,
        /// Sale status, such as `open` or `pending`.
        status: String,
    }
    optional {
        /// ISO 4217 currency of every amount in the payload.
        currency: String,
        /// The customer, when known.
        customer_id: String,
        /// The customer's email address, when known.
        customer_email: String,
        /// The store or warehouse.
        location_id: String,
        /// The register or terminal.
        register_id: String,
        /// The staff member ringing up the sale.
        employee_id: String,
        /// Amount before tax and discounts.
        subtotal: Money,
        /// Tax included in `amount`.
        tax_amount: Money,
        /// Discounts applied.
        discount_amount: Money,
    }
    lists {
        /// What is being sold.
        line_items: LineItem,
    }
}

payload! {
    /// `transaction.completed`: a sale was finalized (the announcement's example payload).
    TransactionCompleted for TRANSACTION_COMPLETED {
        /// The sale.
        transaction_id: String,
        /// Total amount charged.
        amount: Money,
        /// Sale status, normally `completed`.
        status: String,
    }
    optional {
        /// ISO 4217 currency of every amount in the payload.
        currency: String,
        /// The customer, when known.
        customer_id: String,
        /// The customer's email address, for the order confirmation.
        customer_email: String,
        /// The store or warehouse.
        location_id: String,
        /// The register or terminal.
        register_id: String,
        /// The staff member who completed the sale.
        employee_id: String,
        /// Amount before tax and discounts.
        subtotal: Money,
        /// Tax included in `amount`.
        tax_amount: Money,
        /// Discounts applied.
        discount_amount: Money,
        /// Tip added by the customer.
        tip_amount: Money,
        /// How it was paid: `card`, `cash`, `gift_card`, `split`, …
        payment_method: String,
        /// When the sale was finalized, if different from the envelope's `created_at`.
        #[serde(with = "crate::timestamp::option")]
        completed_at: OffsetDateTime,
    }
    lists {
        /// What was sold.
        line_items: LineItem,
    }
}

payload! {
    /// `transaction.refunded`: money was returned for (part of) a sale.
    TransactionRefunded for TRANSACTION_REFUNDED {
        /// The original sale.
        transaction_id: String,
        /// The refund itself.
        refund_id: String,
        /// The amount refunded.
        amount: Money,
    }
    optional {
        /// ISO 4217 currency of every amount in the payload.
        currency: String,
        /// The original sale's total.
        original_amount: Money,
        /// `refunded` (whole sale) or `partially_refunded`.
        status: String,
        /// Why the refund was made: `customer_request`, `damaged`, `duplicate`, …
        reason: String,
        /// The customer, when known.
        customer_id: String,
        /// The customer's email address, when known.
        customer_email: String,
        /// The store or warehouse.
        location_id: String,
        /// Whether returned items went back into stock.
        restocked: bool,
    }
    lists {
        /// The lines refunded, for partial refunds.
        line_items: LineItem,
    }
}

payload! {
    /// `payment.succeeded`: a payment was confirmed.
    PaymentSucceeded for PAYMENT_SUCCEEDED {
        /// The payment.
        payment_id: String,
        /// The sale it pays for.
        transaction_id: String,
        /// The amount captured.
        amount: Money,
    }
    optional {
        /// ISO 4217 currency of `amount`.
        currency: String,
        /// `card`, `cash`, `gift_card`, `wallet`, …
        payment_method: String,
        /// Card brand for card payments, such as `visa`.
        card_brand: String,
        /// Last four digits of the card, for receipts.
        card_last4: String,
        /// The processor's authorization code.
        authorization_code: String,
        /// The customer, when known.
        customer_id: String,
    }
    lists {}
}

payload! {
    /// `payment.failed`: a payment was declined or errored.
    PaymentFailed for PAYMENT_FAILED {
        /// The payment attempt.
        payment_id: String,
        /// The sale it was meant to pay for.
        transaction_id: String,
        /// The amount attempted.
        amount: Money,
    }
    optional {
        /// ISO 4217 currency of `amount`.
        currency: String,
        /// `card`, `gift_card`, `wallet`, …
        payment_method: String,
        /// Card brand for card payments.
        card_brand: String,
        /// Last four digits of the card.
        card_last4: String,
        /// Machine-readable reason, such as `card_declined` or `insufficient_funds`.
        failure_code: String,
        /// Human-readable reason, for staff.
        failure_message: String,
        /// The customer, when known.
        customer_id: String,
    }
    lists {}
}

payload! {
    /// `customer.created`: a customer registered.
    CustomerCreated for CUSTOMER_CREATED {
        /// The customer.
        customer_id: String,
    }
    optional {
        /// Email address.
        email: String,
        /// Given name.
        first_name: String,
        /// Family name.
        last_name: String,
        /// Phone number, ideally E.164.
        phone: String,
        /// Whether the customer joined the loyalty programme.
        loyalty_member: bool,
        /// Whether the customer agreed to marketing messages.
        accepts_marketing: bool,
        /// The location where the customer registered.
        location_id: String,
    }
    lists {}
}

payload! {
    /// `customer.updated`: a customer profile changed.
    CustomerUpdated for CUSTOMER_UPDATED {
        /// The customer.
        customer_id: String,
    }
    optional {
        /// Email address after the change.
        email: String,
        /// Given name.
        first_name: String,
        /// Family name.
        last_name: String,
        /// Phone number, ideally E.164.
        phone: String,
        /// Whether the customer is in the loyalty programme.
        loyalty_member: bool,
        /// Whether the customer agrees to marketing messages.
        accepts_marketing: bool,
    }
    lists {
        /// Names of the fields that changed, such as `email`.
        changed_fields: String,
    }
}

payload! {
    /// `loyalty.points_earned`: a customer earned loyalty points.
    LoyaltyPointsEarned for LOYALTY_POINTS_EARNED {
        /// The customer.
        customer_id: String,
        /// Points earned by this event.
        points: i64,
        /// Point balance after earning.
        balance: i64,
    }
    optional {
        /// The sale that earned the points.
        transaction_id: String,
        /// The loyalty programme.
        program_id: String,
        /// Why: `purchase`, `signup_bonus`, `referral`, `adjustment`, …
        reason: String,
    }
    lists {}
}

payload! {
    /// `loyalty.reward_redeemed`: a customer spent points on a reward.
    LoyaltyRewardRedeemed for LOYALTY_REWARD_REDEEMED {
        /// The customer.
        customer_id: String,
        /// The reward redeemed.
        reward_id: String,
        /// Points spent.
        points_redeemed: i64,
        /// Point balance after redeeming.
        balance: i64,
    }
    optional {
        /// Reward name, for receipts.
        reward_name: String,
        /// The sale the reward was applied to.
        transaction_id: String,
        /// Monetary value of the reward, when it is a discount.
        discount_amount: Money,
        /// ISO 4217 currency of `discount_amount`.
        currency: String,
        /// The loyalty programme.
        program_id: String,
    }
    lists {}
}
