//! One realistic sample payload per built-in event type, for the test tool and the catalogue.

use time::macros::datetime;

use super::Event;
use super::payloads::{
    CustomerCreated, CustomerUpdated, InventoryLowStock, InventoryUpdated, LineItem,
    LoyaltyPointsEarned, LoyaltyRewardRedeemed, PaymentFailed, PaymentSucceeded, ProductCreated,
    ProductUpdated, TransactionCompleted, TransactionCreated, TransactionRefunded,
};
use crate::{EventType, Money};

/// Cents to an amount with two fractional digits.
fn usd(cents: i128) -> Money {
    Money::from_minor_units(cents, 2).unwrap_or(Money::ZERO)
}

fn coffee_lines() -> Vec<LineItem> {
    let mut latte = LineItem::new("prod_latte_12oz", 2, usd(475));
    latte.sku = Some("LAT-12".into());
    latte.name = Some("Latte 12oz".into());
    let mut beans = LineItem::new("prod_beans_1kg", 1, usd(11600));
    beans.variant_id = Some("var_beans_1kg_dark".into());
    beans.sku = Some("BEAN-1K-D".into());
    beans.name = Some("House Blend Beans 1kg".into());
    vec![latte, beans]
}

#[allow(clippy::too_many_lines)] // one arm per event type, flat on purpose
pub(super) fn sample(event_type: &EventType) -> Option<Event> {
    let event: Event = match event_type.as_str() {
        "inventory.updated" => {
            let mut e = InventoryUpdated::new("prod_beans_1kg", "loc_downtown", 41);
            e.variant_id = Some("var_beans_1kg_dark".into());
            e.sku = Some("BEAN-1K-D".into());
            e.previous_quantity = Some(42);
            e.reason = Some("sale".into());
            e.transaction_id = Some("txn_9876543210".into());
            e.into()
        }
        "inventory.low_stock" => {
            let mut e = InventoryLowStock::new("prod_beans_1kg", "loc_downtown", 4, 5);
            e.variant_id = Some("var_beans_1kg_dark".into());
            e.sku = Some("BEAN-1K-D".into());
            e.name = Some("House Blend Beans 1kg".into());
            e.reorder_quantity = Some(24);
            e.supplier_id = Some("sup_roastery_01".into());
            e.into()
        }
        "product.created" => {
            let mut e = ProductCreated::new("prod_cold_brew", "Cold Brew 16oz");
            e.sku = Some("CB-16".into());
            e.barcode = Some("0123456789012".into());
            e.price = Some(usd(550));
            e.currency = Some("USD".into());
            e.cost = Some(usd(120));
            e.category = Some("beverages".into());
            e.status = Some("active".into());
            e.into()
        }
        "product.updated" => {
            let mut e = ProductUpdated::new("prod_cold_brew", "Cold Brew 16oz");
            e.sku = Some("CB-16".into());
            e.price = Some(usd(595));
            e.currency = Some("USD".into());
            e.status = Some("active".into());
            e.changed_fields = vec!["price".into()];
            e.into()
        }
        "transaction.created" => {
            let mut e = TransactionCreated::new("txn_9876543210", usd(12550), "open");
            e.currency = Some("USD".into());
            e.customer_id = Some("cust_123456".into());
            e.location_id = Some("loc_downtown".into());
            e.register_id = Some("reg_02".into());
            e.line_items = coffee_lines();
            e.into()
        }
        "transaction.completed" => {
            let mut e = TransactionCompleted::new("txn_9876543210", usd(12550), "completed");
            e.currency = Some("USD".into());
            e.customer_id = Some("cust_123456".into());
            e.customer_email = Some("jane@example.com".into());
            e.location_id = Some("loc_downtown".into());
            e.register_id = Some("reg_02".into());
            e.subtotal = Some(usd(12550));
            e.tax_amount = Some(usd(0));
            e.payment_method = Some("card".into());
            e.completed_at = Some(datetime!(2024-11-10 10:30 UTC));
            e.line_items = coffee_lines();
            e.into()
        }
        "transaction.refunded" => {
            let mut e = TransactionRefunded::new("txn_9876543210", "ref_55501", usd(950));
            e.currency = Some("USD".into());
            e.original_amount = Some(usd(12550));
            e.status = Some("partially_refunded".into());
            e.reason = Some("customer_request".into());
            e.customer_id = Some("cust_123456".into());
            e.restocked = Some(false);
            e.line_items = vec![LineItem::new("prod_latte_12oz", 2, usd(475))];
            e.into()
        }
        "payment.succeeded" => {
            let mut e = PaymentSucceeded::new("pay_777001", "txn_9876543210", usd(12550));
            e.currency = Some("USD".into());
            e.payment_method = Some("card".into());
            e.card_brand = Some("visa".into());
            e.card_last4 = Some("4242".into());
            e.authorization_code = Some("A1B2C3".into());
            e.customer_id = Some("cust_123456".into());
            e.into()
        }
        "payment.failed" => {
            let mut e = PaymentFailed::new("pay_777002", "txn_9876543211", usd(4999));
            e.currency = Some("USD".into());
            e.payment_method = Some("card".into());
            e.card_brand = Some("mastercard".into());
            e.card_last4 = Some("0341".into());
            e.failure_code = Some("card_declined".into());
            e.failure_message = Some("The card was declined by the issuer".into());
            e.into()
        }
        "customer.created" => {
            let mut e = CustomerCreated::new("cust_123456");
            e.email = Some("jane@example.com".into());
            e.first_name = Some("Jane".into());
            e.last_name = Some("Doe".into());
            e.phone = Some("+15555550100".into());
            e.loyalty_member = Some(true);
            e.accepts_marketing = Some(false);
            e.location_id = Some("loc_downtown".into());
            e.into()
        }
        "customer.updated" => {
            let mut e = CustomerUpdated::new("cust_123456");
            e.email = Some("jane.doe@example.com".into());
            e.first_name = Some("Jane".into());
            e.last_name = Some("Doe".into());
            e.changed_fields = vec!["email".into()];
            e.into()
        }
        "loyalty.points_earned" => {
            let mut e = LoyaltyPointsEarned::new("cust_123456", 125, 1_340);
            e.transaction_id = Some("txn_9876543210".into());
            e.program_id = Some("prog_coffee_club".into());
            e.reason = Some("purchase".into());
            e.into()
        }
        "loyalty.reward_redeemed" => {
            let mut e = LoyaltyRewardRedeemed::new("cust_123456", "rwd_free_latte", 500, 840);
            e.reward_name = Some("Free Latte".into());
            e.transaction_id = Some("txn_9876543212".into());
            e.discount_amount = Some(usd(475));
            e.currency = Some("USD".into());
            e.program_id = Some("prog_coffee_club".into());
            e.into()
        }
        _ => return None,
    };
    Some(event)
}
