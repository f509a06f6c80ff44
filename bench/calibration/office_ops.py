"""Office operations: fans, alarms, subscriptions, invoices, reports, users, backups, chat.

Calibration module (see README.md): its requests set the thresholds of the
embedded server's decode-time checks. It is not a held-out module; the bodies
are fakes that return plausible results and touch nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from runtime import tool

FanRoom = Literal["bedroom", "study", "lounge", "attic"]
AlarmZone = Literal["ground_floor", "first_floor", "garage", "perimeter"]
Plan = Literal["basic", "pro", "team"]
Report = Literal["sales", "churn", "inventory", "payroll"]


@tool(timeout_s=5)
def set_fan(room: FanRoom, on: bool = True, speed: int | None = None) -> dict[str, object]:
    """Switch the ceiling fan in a room on or off.

    Args:
        room: Room with the fan.
        on: True to switch the fan on, False to switch it off.
        speed: Fan speed from 1 (slowest) to 5.
    """
    if speed is not None and not 1 <= speed <= 5:
        raise ValueError("speed is 1-5")
    return {"room": room, "on": on, "speed": speed if on else 0}


@tool(timeout_s=5)
def set_alarm(zone: AlarmZone, armed: bool = True) -> dict[str, object]:
    """Arm or disarm the burglar alarm in one zone.

    Args:
        zone: Alarm zone.
        armed: True to arm the zone, False to disarm it.
    """
    return {"zone": zone, "armed": armed}


@tool(timeout_s=5)
def update_subscription(
    account_id: Annotated[
        str, Field(pattern=r"^AC-\d{4}$", description="Account id, e.g. AC-1234.")
    ],
    auto_renew: bool = True,
    plan: Plan | None = None,
) -> dict[str, object]:
    """Change a customer's subscription: its plan and whether it renews by itself.

    Args:
        account_id: Account id, e.g. AC-1234.
        auto_renew: Whether the subscription renews automatically at the end of the term.
        plan: New plan; leave unset to keep the current one.
    """
    return {"account_id": account_id, "auto_renew": auto_renew, "plan": plan or "unchanged"}


@tool(timeout_s=5)
def list_invoices(
    customer_id: Annotated[str, Field(pattern=r"^CU-\d+$", description="Customer id, e.g. CU-42.")],
    include_paid: bool = False,
    limit: int = 20,
) -> dict[str, object]:
    """List a customer's invoices, newest first; only unpaid ones unless asked.

    Args:
        customer_id: Customer id, e.g. CU-42.
        include_paid: Also list invoices that are already paid.
        limit: At most this many invoices.
    """
    return {
        "customer_id": customer_id,
        "invoices": [],
        "include_paid": include_paid,
        "limit": limit,
    }


@tool(timeout_s=5)
def send_report(report: Report, recipient: str, attach_pdf: bool = False) -> dict[str, object]:
    """Email this month's figures of one report to someone.

    Args:
        report: Which report to send.
        recipient: Email address to send it to.
        attach_pdf: Attach the report as a PDF instead of a link.
    """
    if "@" not in recipient:
        raise ValueError("recipient must be an email address")
    return {"report": report, "recipient": recipient, "attach_pdf": attach_pdf}


@tool(timeout_s=5)
def create_user(
    username: str, admin: bool = False, send_welcome_email: bool = True
) -> dict[str, object]:
    """Create a user account on the company systems.

    Args:
        username: Login name of the new user.
        admin: Give the user administrator rights.
        send_welcome_email: Email the user their welcome pack.
    """
    return {"username": username, "admin": admin, "welcome_sent": send_welcome_email}


@tool(timeout_s=5)
def run_backup(server: str, incremental: bool = True, verify: bool = False) -> dict[str, object]:
    """Back up one server now.

    Args:
        server: Server name, for example db-01.
        incremental: Copy only what changed since the last backup; False for a full backup.
        verify: Read the backup back afterwards to check it.
    """
    return {"server": server, "kind": "incremental" if incremental else "full", "verify": verify}


@tool(timeout_s=5)
def set_channel_mute(channel: str, muted: bool = True) -> dict[str, object]:
    """Mute or unmute a chat channel's notifications for the team.

    Args:
        channel: Channel name, for example #general.
        muted: True to mute the channel, False to unmute it.
    """
    return {"channel": channel, "muted": muted}
