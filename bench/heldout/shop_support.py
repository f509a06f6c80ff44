"""Back-office tools for the web shop's customer-support team.

Held-out evaluation module (see README.md). The order database here is a
handful of canned records; nothing is written anywhere.
"""

from __future__ import annotations

import datetime

from runtime import tool

_WINDOWS = ("morning", "afternoon", "evening", "any")
_REFUND_METHODS = ("original_payment", "store_credit")


@tool
def get_order(order_id: str) -> dict:
    """Look up an order: items, payment, shipping status and tracking.

    Args:
        order_id: Order number as shown on the confirmation email, e.g. "SO-104233".
    """
    return {
        "order_id": order_id,
        "status": "shipped",
        "carrier": "DPD",
        "tracking": "15503399281734",
        "items": [
            {"sku": "HD-2231-BL-M", "name": "Hoodie, blue, M", "qty": 1, "price": 49.0},
            {"sku": "SK-0091-GR", "name": "Wool socks, grey (3-pack)", "qty": 2, "price": 14.5},
        ],
        "placed": "2026-11-24",
    }


@tool
def search_products(
    query: str,
    max_price: float | None = None,
    in_stock_only: bool = False,
    limit: int = 10,
) -> list:
    """Search the catalogue by keywords.

    Args:
        query: Keywords, e.g. "waterproof jacket women".
        max_price: Only products at or below this price in EUR.
        in_stock_only: Hide products that are sold out.
        limit: Maximum number of results, 1 to 50.
    """
    if not 1 <= limit <= 50:
        raise ValueError("limit must be between 1 and 50")
    catalogue = [
        {"sku": "JK-7710-NV-S", "name": "Trail rain jacket, navy", "price": 89.0, "stock": 4},
        {"sku": "JK-7712-OL-M", "name": "Packable shell jacket, olive", "price": 59.0, "stock": 0},
    ]
    hits = [
        p
        for p in catalogue
        if (max_price is None or p["price"] <= max_price) and (not in_stock_only or p["stock"])
    ]
    return hits[:limit]


@tool
def create_return(
    order_id: str,
    skus: list[str],
    reason: str,
    refund_method: str = "original_payment",
    send_label: bool = True,
) -> dict:
    """Open a return for some items of an order and (by default) email the customer a label.

    Args:
        order_id: Order number, e.g. "SO-104233".
        skus: SKUs of the items being sent back, e.g. ["HD-2231-BL-M"].
        reason: Why the customer is returning them, in a few words.
        refund_method: "original_payment" or "store_credit".
        send_label: Email a prepaid return label to the customer.
    """
    if refund_method not in _REFUND_METHODS:
        raise ValueError(f"refund_method must be one of {_REFUND_METHODS}")
    if not skus:
        raise ValueError("list at least one SKU")
    return {
        "return_id": "RMA-22817",
        "order_id": order_id,
        "skus": skus,
        "reason": reason,
        "refund_method": refund_method,
        "label_sent": send_label,
    }


@tool
def add_ticket_note(ticket_id: str, note: str, internal: bool = True) -> dict:
    """Add a note to a support ticket.

    Args:
        ticket_id: Helpdesk ticket id, e.g. "T-48121".
        note: The text of the note.
        internal: Internal notes are visible to staff only; set to false to send
            the note to the customer as a reply.
    """
    return {"ticket_id": ticket_id, "note_id": 99120, "internal": internal, "chars": len(note)}


@tool
def send_coupon(email: str, percent_off: int, expires_on: str, note: str = "") -> dict:
    """Email a customer a one-off discount code, e.g. as an apology for a late delivery.

    Args:
        email: Customer's email address.
        percent_off: Discount in percent, 5 to 30.
        expires_on: Last day the code can be used, YYYY-MM-DD.
        note: Optional personal message included in the email.
    """
    if not 5 <= percent_off <= 30:
        raise ValueError("percent_off must be between 5 and 30")
    datetime.date.fromisoformat(expires_on)
    return {"code": "SORRY-8Q2M", "email": email, "percent_off": percent_off, "expires": expires_on}


@tool
def reschedule_delivery(order_id: str, new_date: str, time_window: str = "any") -> dict:
    """Move the delivery of an order that has not shipped yet to another day.

    Args:
        order_id: Order number, e.g. "SO-104233".
        new_date: Delivery date, YYYY-MM-DD. Weekdays only.
        time_window: "morning", "afternoon", "evening" or "any".
    """
    day = datetime.date.fromisoformat(new_date)
    if day.weekday() >= 5:
        raise ValueError("deliveries run Monday to Friday")
    if time_window not in _WINDOWS:
        raise ValueError(f"time_window must be one of {_WINDOWS}")
    return {"order_id": order_id, "delivery_date": new_date, "time_window": time_window}
